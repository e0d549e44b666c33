// The viewer: series thumbnails, one or two viewports, stack scrolling, window and level,
// presets, zoom and pan, invert, cine, distance and angle in mm. The node renders each
// frame at the window asked for (JPEG, small first then full, sized to the measured
// link); while the window is dragged, the page re-maps the 8-bit image it holds with a
// lookup table (smooth), then asks the node for the frame at the new window.
// Reformats (coronal, sagittal) of a series that forms a volume are rendered on the node
// too (PNG); two viewports scroll together, by position along the slices' normal when
// both series share a Frame of Reference, else by relative index; the layout follows a
// hanging protocol chosen by the study's modality, which the reader may change (kept in
// this browser for their account and that modality).
"use strict";
(() => {
  const root = document.getElementById("viewer");
  const base = `/web/cases/${root.dataset.case}`;
  const T = JSON.parse(document.getElementById("viewer-i18n").textContent);
  const lang = document.documentElement.lang;
  const num = (v, d = 1) => v.toLocaleString(lang, { maximumFractionDigits: d, minimumFractionDigits: d });
  const link = { rate: 0 }; // bytes per millisecond, smoothed
  const images = new Map(); // url -> Promise<ImageBitmap>
  let series = [];
  let active = null;
  const viewports = [];
  const volumes = new Map(); // series index -> Promise<{geometry} | {error}>
  const PLANES = ["axial", "coronal", "sagittal"];

  // Whether series s forms a volume, and its planes (asked once; the node says why not).
  function volumeOf(s) {
    if (!volumes.has(s)) {
      volumes.set(s, (async () => {
        const r = await fetch(`${base}/series/${s}/mpr`, { credentials: "same-origin" });
        return r.ok ? { geometry: await r.json() } : { error: (await r.text()) || `${r.status}` };
      })());
    }
    return volumes.get(s);
  }

  async function load(url) {
    if (!images.has(url)) {
      images.set(url, (async () => {
        const start = performance.now();
        const response = await fetch(url, { credentials: "same-origin" });
        if (!response.ok) throw new Error(`${response.status}`);
        const blob = await response.blob();
        const ms = Math.max(1, performance.now() - start);
        const rate = blob.size / ms;
        link.rate = link.rate ? 0.7 * link.rate + 0.3 * rate : rate;
        const image = await createImageBitmap(blob); // no blob: URL (the page's CSP)
        const used = response.headers.get("X-Window"); // the window these greys stand for
        image.window = used ? used.split(",").map(Number) : null;
        return image;
      })());
      if (images.size > 600) images.delete(images.keys().next().value);
    }
    return images.get(url);
  }

  // What the link allows: below 1 Mbit/s, smaller and more compressed full images.
  const slow = () => link.rate > 0 && link.rate < 125;
  function frameUrl(s, f, view, small) {
    const q = new URLSearchParams();
    if (view.window) { q.set("c", view.window[0].toFixed(2)); q.set("w", view.window[1].toFixed(2)); }
    if (view.invert) q.set("invert", "1");
    q.set("size", small ? 256 : slow() ? 1024 : 4096);
    q.set("q", small ? 60 : slow() ? 75 : 88);
    return `${base}/frames/${s}/${f}.jpg?${q}`;
  }
  // A reformatted plane: PNG, small first on every link (the node windows it).
  function planeUrl(s, plane, i, view, small) {
    const q = new URLSearchParams();
    if (view.window) { q.set("c", view.window[0].toFixed(2)); q.set("w", view.window[1].toFixed(2)); }
    if (view.invert) q.set("invert", "1");
    q.set("size", small ? 256 : 4096);
    return `${base}/series/${s}/mpr/${plane}/${i}.png?${q}`;
  }

  class Viewport {
    constructor(element) {
      this.el = element;
      this.canvas = element.querySelector("canvas");
      this.g = this.canvas.getContext("2d");
      this.scroll = element.querySelector("input.scroll");
      this.s = -1;
      this.plane = "axial";
      this.geometry = null; // the volume's planes, once a reformat is shown
      this.frame = 0;
      this.dir = 1;
      this.image = null; // what is drawn, with the window it was rendered at
      this.marks = [];
      this.tool = "window";
      this.reset();
      this.scroll.addEventListener("input", () => this.show(Number(this.scroll.value)));
      this.canvas.addEventListener("pointerdown", (e) => this.down(e));
      this.canvas.addEventListener("pointermove", (e) => this.move(e));
      this.canvas.addEventListener("pointerup", (e) => this.up(e));
      this.canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
      element.addEventListener("pointerdown", () => activate(this));
      new ResizeObserver(() => this.draw()).observe(element);
    }
    get series() { return series[this.s]; }
    // How many images the viewport scrolls through: frames, or planes of a reformat.
    get count() {
      return this.plane === "axial" ? this.series.frames.length : this.geometry.planes[this.plane].count;
    }
    // What is drawn: its size in pixels, pixel spacing and edge markers.
    get dims() {
      const s = this.series;
      if (this.plane === "axial") return { w: s.columns, h: s.rows, spacing: s.spacing, markers: s.markers };
      const p = this.geometry.planes[this.plane];
      const mm = s.spacing && (this.plane === "coronal" ? s.spacing.column : s.spacing.row);
      return { w: p.width, h: p.height, spacing: mm ? { row: mm, column: mm, source: s.spacing.source } : null, markers: p.markers };
    }
    url(f, view, small) {
      return this.plane === "axial" ? frameUrl(this.s, f, view, small) : planeUrl(this.s, this.plane, f, view, small);
    }
    reset() {
      this.zoom = 1; this.pan = [0, 0]; this.invert = false; this.marks = []; this.partial = null;
      this.window = this.series && this.series.presets.image ? [...this.series.presets.image] : null;
    }
    open(s, presetName) {
      this.s = s;
      this.plane = "axial";
      this.geometry = null;
      this.reset();
      const p = presetName && this.series.presets[presetName];
      if (p) this.window = [...p];
      this.scroll.max = this.series.frames.length - 1;
      this.image = null;
      showPlanes();
      return this.show(0);
    }
    // Axial (the frames as acquired), coronal or sagittal (reformatted on the node), at
    // the middle plane; the node's reason shown when the series is not a volume.
    async setPlane(plane) {
      if (!this.series) return false;
      const status = document.getElementById("mpr-status");
      if (plane !== "axial") {
        status.textContent = T.mpr_building;
        const found = await volumeOf(this.s);
        if (found.error) { status.textContent = found.error; return false; }
        this.geometry = found.geometry;
      }
      status.textContent = "";
      this.plane = plane;
      this.marks = []; this.partial = null; this.zoom = 1; this.pan = [0, 0]; this.image = null;
      this.scroll.max = this.count - 1;
      this.frame = -1;
      showPlanes();
      await this.show(Math.floor(this.count / 2));
      return true;
    }
    async show(f, led) {
      if (!this.series) return;
      const count = this.count;
      f = Math.max(0, Math.min(count - 1, f));
      this.dir = f >= this.frame ? 1 : -1;
      this.frame = f;
      this.scroll.value = f;
      if (!led) follow(this);
      const view = { window: this.window, invert: this.invert };
      const key = `${this.s}/${this.plane}/${f}/${view.window}/${view.invert}`;
      this.wanted = key;
      const full = this.url(f, view, false);
      const small = this.url(f, view, true);
      try {
        if (!images.has(full)) {
          const low = await load(small);
          if (this.wanted === key) this.put(low, view);
        }
        const high = await load(full);
        if (this.wanted === key) this.put(high, view);
      } catch (err) {
        this.el.querySelector(".bl").textContent = String(err.message || err);
      }
      this.prefetch();
      attributesSoon(this);
    }
    prefetch() {
      const view = { window: this.window, invert: this.invert };
      for (let k = 1; k <= 6; k++) {
        const f = this.frame + this.dir * k;
        if (f < 0 || f >= this.count) break;
        load(this.url(f, view, slow())).catch(() => {});
      }
    }
    put(image, view) {
      this.image = { image, window: view.window || image.window, pixels: null };
      if (!this.window && image.window) this.window = [...image.window];
      this.draw();
    }
    // Image coordinates (pixels of the frame) of a pointer event.
    at(e) {
      const r = this.canvas.getBoundingClientRect();
      const [scale, ox, oy] = this.place();
      return [(e.clientX - r.left - ox) / scale, (e.clientY - r.top - oy) / scale];
    }
    place() {
      const d = this.dims;
      const w = this.canvas.width, h = this.canvas.height;
      const scale = Math.min(w / d.w, h / d.h) * this.zoom;
      return [scale, (w - d.w * scale) / 2 + this.pan[0], (h - d.h * scale) / 2 + this.pan[1]];
    }
    source() {
      // While the window is dragged: the 8-bit image re-mapped to the new window.
      const img = this.image;
      if (!this.preview || !img || !img.window || this.series.colour) return img && img.image;
      if (!img.pixels) {
        const c = new OffscreenCanvas(img.image.width, img.image.height);
        c.getContext("2d").drawImage(img.image, 0, 0);
        img.pixels = c.getContext("2d").getImageData(0, 0, c.width, c.height);
        img.canvas = c;
      }
      const [c0, w0] = img.window, [c1, w1] = this.window;
      const inverted = this.invert !== (this.series.photometric === "MONOCHROME1");
      const lut = new Uint8ClampedArray(256);
      for (let shown = 0; shown < 256; shown++) {
        const v = inverted ? 255 - shown : shown;
        const x = c0 - w0 / 2 + (v / 255) * w0; // the value this grey stood for
        const y = ((x - (c1 - w1 / 2)) / w1) * 255;
        lut[shown] = inverted ? 255 - y : y;
      }
      const out = new ImageData(img.pixels.width, img.pixels.height);
      const src = img.pixels.data, dst = out.data;
      for (let i = 0; i < src.length; i += 4) {
        const v = lut[src[i]];
        dst[i] = dst[i + 1] = dst[i + 2] = v;
        dst[i + 3] = 255;
      }
      img.canvas.getContext("2d").putImageData(out, 0, 0);
      return img.canvas;
    }
    draw() {
      const s = this.series;
      const box = this.el.getBoundingClientRect();
      this.canvas.width = Math.max(1, Math.floor(box.width));
      this.canvas.height = Math.max(1, Math.floor(box.height));
      const g = this.g;
      g.setTransform(1, 0, 0, 1, 0, 0);
      g.fillStyle = "#000";
      g.fillRect(0, 0, this.canvas.width, this.canvas.height);
      if (!s || !this.image) return;
      const [scale, ox, oy] = this.place();
      g.setTransform(scale, 0, 0, scale, ox, oy);
      g.imageSmoothingEnabled = scale < 2;
      const d = this.dims;
      g.drawImage(this.source(), 0, 0, d.w, d.h);
      this.references(g, scale);
      g.lineWidth = 1.5 / scale;
      g.strokeStyle = g.fillStyle = "#ffd24a";
      g.font = `${13 / scale}px system-ui, sans-serif`;
      for (const m of this.partial ? [...this.marks, this.partial] : this.marks) {
        g.beginPath();
        g.moveTo(...m.points[0]);
        for (const p of m.points.slice(1)) g.lineTo(...p);
        g.stroke();
        const label = measure(d.spacing, m);
        if (label) g.fillText(label, m.points[m.points.length - 1][0] + 6 / scale, m.points[m.points.length - 1][1]);
      }
      this.overlay();
    }
    // Where the other viewport's plane cuts this one (same series, another plane): a
    // dashed line, so that the reader sees which slice a reformat's row is.
    references(g, scale) {
      const d = this.dims;
      g.save();
      g.strokeStyle = "#35c4ff";
      g.lineWidth = 1 / scale;
      g.setLineDash([6 / scale, 4 / scale]);
      for (const o of viewports) {
        if (o === this || o.s !== this.s || o.plane === this.plane || !o.series) continue;
        const geometry = this.geometry || o.geometry;
        if (!geometry) continue;
        let x = null, y = null;
        if (this.plane === "axial") {
          if (o.plane === "coronal") y = o.frame + 0.5; else x = o.frame + 0.5;
        } else if (o.plane === "axial") {
          const k = geometry.frames.indexOf(o.frame);
          if (k >= 0) y = ((k + 0.5) * d.h) / geometry.slices;
        } else x = o.frame + 0.5; // coronal and sagittal cut each other upright
        g.beginPath();
        if (y !== null) { g.moveTo(0, y); g.lineTo(d.w, y); } else { g.moveTo(x, 0); g.lineTo(x, d.h); }
        g.stroke();
      }
      g.restore();
    }
    overlay() {
      const s = this.series, d = this.dims;
      const q = (c) => this.el.querySelector(c);
      q(".tl").textContent = `${s.modality} · ${seriesName(s)}` + (this.plane === "axial" ? "" : ` · ${T[`plane_${this.plane}`]}`);
      let at = "";
      if (this.plane === "axial") {
        const f = s.frames[this.frame];
        if (f && f.position !== null) at = ` · ${T.position} ${num(f.position)} mm`;
      }
      q(".tr").textContent = `${this.plane === "axial" ? T.frame : T[`plane_${this.plane}`]} ${this.frame + 1}/${this.count}${at}`;
      q(".bl").textContent = this.window ? `${T.wl} ${num(this.window[0], 0)} / ${num(this.window[1], 0)}` : "";
      q(".br").textContent = `${T.zoom} ${num(this.zoom * 100, 0)} %` + (this.invert ? ` · ${T.inverted}` : "");
      for (const side of ["left", "right", "top", "bottom"]) q(`.marker.${side}`).textContent = d.markers[side] || "";
      q(".lossy").hidden = !s.lossy;
    }
    down(e) {
      if (!this.series) return;
      this.canvas.setPointerCapture(e.pointerId);
      this.drag = { x: e.clientX, y: e.clientY, window: this.window && [...this.window], zoom: this.zoom, pan: [...this.pan], frame: this.frame };
      if (this.tool === "length" || this.tool === "angle") this.placePoint(this.at(e));
    }
    // A measure is made of points placed one by one, each by a click or by the end of a
    // drag; the point after the last placed follows the pointer until it is placed.
    // Length: 2 points; angle: 3, the vertex in the middle.
    placePoint(p) {
      const m = this.partial;
      if (!m) { this.partial = { kind: this.tool, points: [p, p], placed: 1 }; return; }
      if (m.placed >= m.points.length) return; // all placed: the pointer goes up next
      m.points[m.points.length - 1] = p;
      m.placed += 1;
      if (m.placed < needed(m)) m.points.push(p);
    }
    move(e) {
      const d = this.drag;
      const m = this.partial;
      if (!d && m && m.placed < m.points.length) { // between clicks: the next point follows
        m.points[m.points.length - 1] = this.at(e);
        this.draw();
        return;
      }
      if (!d) return;
      const dx = e.clientX - d.x, dy = e.clientY - d.y;
      if (this.tool === "window" && d.window && !this.series.colour) {
        this.window = [d.window[0] + dy * d.window[1] / 256, Math.max(1, d.window[1] + dx * d.window[1] / 256)];
        this.preview = true;
      } else if (this.tool === "pan") this.pan = [d.pan[0] + dx, d.pan[1] + dy];
      else if (this.tool === "zoom") this.zoom = Math.max(0.1, Math.min(20, d.zoom * Math.exp(-dy / 150)));
      else if (this.tool === "scroll") { this.show(d.frame + Math.round(dy / 8)); return; }
      else if (this.partial) this.partial.points[this.partial.points.length - 1] = this.at(e);
      this.draw();
    }
    up(e) {
      const d = this.drag;
      this.drag = null;
      if (!d) return;
      if (this.tool === "window" && this.preview) {
        this.preview = false;
        this.show(this.frame); // the node renders the frame at the new window
      }
      const m = this.partial;
      // The end of a drag places the point that followed it; a click placed it already.
      if (m && m.placed < m.points.length && Math.hypot(e.clientX - d.x, e.clientY - d.y) > 3) {
        this.placePoint(this.at(e));
      }
      if (m && m.placed === needed(m)) {
        this.marks.push(this.partial);
        this.partial = null;
        announce(this);
      }
      this.draw();
    }
    wheel(e) {
      e.preventDefault();
      if (e.ctrlKey) { this.zoom = Math.max(0.1, Math.min(20, this.zoom * Math.exp(-e.deltaY / 300))); this.draw(); }
      else this.show(this.frame + Math.sign(e.deltaY));
    }
  }

  const needed = (m) => (m.kind === "length" ? 2 : 3); // points of a finished measure

  function measure(sp, m) {
    const len = (a, b) => sp ? Math.hypot((b[0] - a[0]) * sp.column, (b[1] - a[1]) * sp.row) : Math.hypot(b[0] - a[0], b[1] - a[1]);
    if (m.kind === "length") return `${num(len(...m.points))} ${sp ? "mm" : "px"}`;
    if (m.points.length < 3) return "";
    if (m.points.some((p, i) => i > 0 && p[0] === m.points[i - 1][0] && p[1] === m.points[i - 1][1])) return "";
    const [a, v, b] = m.points;
    const u = [a[0] - v[0], a[1] - v[1]], w = [b[0] - v[0], b[1] - v[1]];
    const sx = sp ? sp.column : 1, sy = sp ? sp.row : 1;
    const dot = u[0] * w[0] * sx * sx + u[1] * w[1] * sy * sy;
    const angle = Math.acos(dot / (Math.hypot(u[0] * sx, u[1] * sy) * Math.hypot(w[0] * sx, w[1] * sy)));
    return Number.isFinite(angle) ? `${num((angle * 180) / Math.PI)}°` : "";
  }

  function announce(vp) {
    const last = vp.marks[vp.marks.length - 1];
    const sp = vp.dims.spacing;
    document.getElementById("measure").textContent = measure(sp, last) +
      (sp && sp.source === "ImagerPixelSpacing" ? ` (${T.imager_spacing})` : "");
  }

  let attributesTimer = 0;
  function attributesSoon(vp) {
    if (vp !== active || vp.plane !== "axial") return;
    clearTimeout(attributesTimer);
    attributesTimer = setTimeout(async () => {
      const r = await fetch(`${base}/frames/${vp.s}/${vp.frame}/attributes`, { credentials: "same-origin" });
      if (!r.ok) return;
      const body = document.querySelector("#attributes tbody");
      body.replaceChildren();
      for (const [tag, keyword, value] of (await r.json()).attributes) {
        const row = document.createElement("tr");
        for (const text of [tag, keyword, value]) {
          const cell = document.createElement("td");
          cell.textContent = text;
          row.append(cell);
        }
        body.append(row);
      }
    }, 300);
  }

  function activate(vp) {
    active = vp;
    for (const v of viewports) v.el.classList.toggle("active", v === vp);
    showPlanes();
  }

  function showPlanes() {
    for (const b of document.querySelectorAll("[data-plane]")) b.setAttribute("aria-pressed", Boolean(active) && active.plane === b.dataset.plane);
  }

  // Linked scrolling: the other viewports move with the one scrolled, when they show the
  // same plane: to the nearest slice by position along the normal when both series share
  // a Frame of Reference (and the positions are known), else to the same relative index.
  const linked = () => document.getElementById("link").checked;
  function byPosition(a, b) {
    return a.plane === "axial" && b.plane === "axial" && a.series.frame_of_reference &&
      a.series.frame_of_reference === b.series.frame_of_reference &&
      a.series.frames.every((f) => f.position !== null) && b.series.frames.every((f) => f.position !== null);
  }
  function follow(vp) {
    for (const o of viewports) {
      if (o === vp || !o.series) continue;
      if (!linked() || o.plane !== vp.plane) { o.draw(); continue; } // its reference line
      let g;
      if (byPosition(vp, o)) {
        const at = vp.series.frames[vp.frame].position;
        g = 0;
        o.series.frames.forEach((f, i) => { if (Math.abs(f.position - at) < Math.abs(o.series.frames[g].position - at)) g = i; });
      } else g = Math.round((vp.frame / Math.max(1, vp.count - 1)) * (o.count - 1));
      if (g !== o.frame) o.show(g, true); else o.draw();
    }
    linkStatus();
  }
  function linkStatus() {
    const box = document.getElementById("link-status");
    const [a, b] = viewports;
    box.textContent = !b || !linked() || !a.series || !b.series || a.plane !== b.plane ? "" :
      byPosition(a, b) ? T.linked_position : T.linked_index;
  }

  function setTool(tool) {
    for (const vp of viewports) { vp.tool = tool; vp.partial = null; }
    for (const b of document.querySelectorAll("[data-tool]")) b.setAttribute("aria-pressed", b.dataset.tool === tool);
  }

  let cine = 0;
  function toggleCine() {
    if (cine) { clearInterval(cine); cine = 0; }
    else {
      const fps = Number(document.getElementById("fps").value);
      cine = setInterval(() => {
        const vp = active;
        vp.show((vp.frame + 1) % vp.count);
      }, 1000 / fps);
    }
    document.getElementById("cine").setAttribute("aria-pressed", Boolean(cine));
  }

  function preset(name) {
    const p = active.series.presets[name];
    if (!p) return;
    active.window = [...p];
    active.show(active.frame);
  }

  function act(what) {
    const vp = active;
    if (!vp || !vp.series) return;
    if (what === "invert") { vp.invert = !vp.invert; vp.show(vp.frame); }
    else if (what === "fit") { vp.zoom = 1; vp.pan = [0, 0]; vp.draw(); }
    else if (what === "reset") { vp.reset(); vp.show(vp.frame); }
    else if (what === "cine") toggleCine();
    else if (what === "layout") {
      if (viewports.length === 1) { layout(2); viewports[1].open(Math.min(series.length - 1, 1)); } else layout(1);
    }
  }

  function layout(count) {
    const box = document.getElementById("viewports");
    while (viewports.length < count) {
      const el = box.querySelector(".viewport").cloneNode(true);
      box.append(el);
      const vp = new Viewport(el);
      vp.tool = viewports[0].tool;
      viewports.push(vp);
    }
    while (viewports.length > count) viewports.pop().el.remove();
    box.className = count === 2 ? "two" : "one";
    activate(viewports[0]);
    for (const vp of viewports) vp.draw();
    linkStatus();
  }

  // Hanging protocols: how a study is laid out when it opens, by its modality. CT: the
  // series in a soft-tissue window on the left, the same in a lung window on the right
  // (or its coronal reformat); MR: two series side by side; a radiograph (CR, DX, MG),
  // ultrasound and the rest: one image, fitted.
  const BY_MODALITY = { CT: "ct", MR: "two" };
  const hangingKey = (modality) => `tsf.hanging.${root.dataset.account}.${modality}`;
  async function hang(name) {
    const first = firstToRead(series);
    const soft = series[first].presets.mediastinum ? "mediastinum" : null;
    if (name === "one") { layout(1); await viewports[0].open(first); }
    else if (name === "ct") {
      layout(2);
      await Promise.all([viewports[0].open(first, soft), viewports[1].open(first, series[first].presets.lung ? "lung" : null)]);
    } else if (name === "ct_mpr") {
      layout(2);
      await Promise.all([viewports[0].open(first, soft), viewports[1].open(first, soft)]);
      if (!(await viewports[1].setPlane("coronal"))) await viewports[1].open(first, series[first].presets.lung ? "lung" : null);
    } else {
      layout(2);
      const other = series.findIndex((s, i) => i !== first && !s.localizer && s.frames.length > 1);
      await Promise.all([viewports[0].open(first), viewports[1].open(other >= 0 ? other : first)]);
    }
    activate(viewports[0]);
    showPresets();
    linkStatus();
  }
  function chosenHanging(modality) {
    let kept = null;
    try { kept = localStorage.getItem(hangingKey(modality)); } catch { kept = null; }
    return kept || "auto";
  }

  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, textarea, select") || !active) return;
    const keys = {
      ArrowDown: () => active.show(active.frame + 1), ArrowUp: () => active.show(active.frame - 1),
      PageDown: () => active.show(active.frame + 10), PageUp: () => active.show(active.frame - 10),
      Home: () => active.show(0), End: () => active.show(active.count - 1),
      w: () => setTool("window"), p: () => setTool("pan"), z: () => setTool("zoom"),
      s: () => setTool("scroll"), m: () => setTool("length"), a: () => setTool("angle"),
      i: () => act("invert"), f: () => act("fit"), r: () => act("reset"), " ": () => act("cine"),
      t: () => act("layout"),
      A: () => active.setPlane("axial"), C: () => active.setPlane("coronal"), S: () => active.setPlane("sagittal"),
    };
    const presets = Object.keys(active.series.presets);
    if (/^[1-9]$/.test(e.key) && presets[Number(e.key) - 1]) { preset(presets[Number(e.key) - 1]); e.preventDefault(); return; }
    if (keys[e.key]) { keys[e.key](); e.preventDefault(); }
  });
  for (const b of document.querySelectorAll("[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
  for (const b of document.querySelectorAll("[data-act]")) b.addEventListener("click", () => act(b.dataset.act));
  for (const b of document.querySelectorAll("[data-plane]")) b.addEventListener("click", () => active && active.setPlane(b.dataset.plane));
  document.getElementById("link").addEventListener("change", linkStatus);
  document.getElementById("fps").addEventListener("change", () => { if (cine) { toggleCine(); toggleCine(); } });

  function showPresets() {
    const box = document.getElementById("presets");
    box.replaceChildren();
    Object.keys(active.series.presets).forEach((name, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.preset = name;
      b.textContent = `${i + 1} ${T[`preset_${name}`] || name}`;
      b.addEventListener("click", () => preset(name));
      box.append(b);
    });
  }

  // A series by its description ("ABDOMEN PELVIS 5mm"), kept cleaned by de-identification
  // (PS3.15 E.3.5); the modality when it has none.
  function seriesName(s) { return s.description || s.modality; }

  // The series a radiologist reads first: the largest diagnostic one (most images), never
  // a localizer or scout (ImageType LOCALIZER, or a single image) while another exists.
  function firstToRead(list) {
    let best = 0, bestCount = -1;
    list.forEach((s, i) => {
      const count = (s.localizer || s.frames.length < 2) ? 0 : s.frames.length;
      if (count > bestCount) { best = i; bestCount = count; }
    });
    return best;
  }

  (async () => {
    const r = await fetch(`${base}/series`, { credentials: "same-origin" });
    series = r.ok ? await r.json() : [];
    const thumbs = document.getElementById("thumbs");
    if (!series.length) { thumbs.textContent = T.no_images; return; }
    viewports.push(new Viewport(document.querySelector("#viewports .viewport")));
    activate(viewports[0]);
    series.forEach((s, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "thumb";
      const img = new Image();
      img.alt = s.description || s.modality;
      img.src = frameUrl(i, Math.floor(s.frames.length / 2), { window: s.presets.image || null, invert: false }, true).replace("size=256", "size=96");
      const label = document.createElement("span");
      label.textContent = `${seriesName(s)} · ${s.frames.length}`;
      b.append(img, label);
      b.addEventListener("click", () => { active.open(i); showPresets(); });
      thumbs.append(b);
    });
    setTool("window");
    const modality = series[firstToRead(series)].modality;
    const select = document.getElementById("hanging");
    select.value = chosenHanging(modality);
    select.addEventListener("change", () => {
      try { localStorage.setItem(hangingKey(modality), select.value); } catch { /* private mode */ }
      hang(select.value === "auto" ? BY_MODALITY[modality] || "one" : select.value);
    });
    await hang(select.value === "auto" ? BY_MODALITY[modality] || "one" : select.value);
    root.dataset.ready = "1";
  })();
})();
