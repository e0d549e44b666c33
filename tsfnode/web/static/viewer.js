// The viewer: series thumbnails, one or two viewports, stack scrolling, window and level,
// presets, zoom and pan, invert, cine, distance and angle in mm. The node renders each
// frame at the window asked for (JPEG, small first then full, sized to the measured
// link); while the window is dragged, the page re-maps the 8-bit image it holds with a
// lookup table (smooth), then asks the node for the frame at the new window.
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

  class Viewport {
    constructor(element) {
      this.el = element;
      this.canvas = element.querySelector("canvas");
      this.g = this.canvas.getContext("2d");
      this.scroll = element.querySelector("input.scroll");
      this.s = -1;
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
    reset() {
      this.zoom = 1; this.pan = [0, 0]; this.invert = false; this.marks = []; this.partial = null;
      this.window = this.series && this.series.presets.image ? [...this.series.presets.image] : null;
    }
    open(s) {
      this.s = s;
      this.reset();
      this.scroll.max = this.series.frames.length - 1;
      this.show(0);
    }
    async show(f) {
      if (!this.series) return;
      const count = this.series.frames.length;
      f = Math.max(0, Math.min(count - 1, f));
      this.dir = f >= this.frame ? 1 : -1;
      this.frame = f;
      this.scroll.value = f;
      const view = { window: this.window, invert: this.invert };
      const key = `${this.s}/${f}/${view.window}/${view.invert}`;
      this.wanted = key;
      const full = frameUrl(this.s, f, view, false);
      const small = frameUrl(this.s, f, view, true);
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
        if (f < 0 || f >= this.series.frames.length) break;
        load(frameUrl(this.s, f, view, slow())).catch(() => {});
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
      const s = this.series;
      const w = this.canvas.width, h = this.canvas.height;
      const scale = Math.min(w / s.columns, h / s.rows) * this.zoom;
      return [scale, (w - s.columns * scale) / 2 + this.pan[0], (h - s.rows * scale) / 2 + this.pan[1]];
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
      g.drawImage(this.source(), 0, 0, s.columns, s.rows);
      g.lineWidth = 1.5 / scale;
      g.strokeStyle = g.fillStyle = "#ffd24a";
      g.font = `${13 / scale}px system-ui, sans-serif`;
      for (const m of this.partial ? [...this.marks, this.partial] : this.marks) {
        g.beginPath();
        g.moveTo(...m.points[0]);
        for (const p of m.points.slice(1)) g.lineTo(...p);
        g.stroke();
        const label = measure(s, m);
        if (label) g.fillText(label, m.points[m.points.length - 1][0] + 6 / scale, m.points[m.points.length - 1][1]);
      }
      this.overlay();
    }
    overlay() {
      const s = this.series, f = s.frames[this.frame];
      const q = (c) => this.el.querySelector(c);
      q(".tl").textContent = `${s.modality} · ${seriesName(s)}`;
      q(".tr").textContent = `${T.frame} ${this.frame + 1}/${s.frames.length}` +
        (f.position !== null ? ` · ${T.position} ${num(f.position)} mm` : "");
      q(".bl").textContent = this.window ? `${T.wl} ${num(this.window[0], 0)} / ${num(this.window[1], 0)}` : "";
      q(".br").textContent = `${T.zoom} ${num(this.zoom * 100, 0)} %` + (this.invert ? ` · ${T.inverted}` : "");
      for (const side of ["left", "right", "top", "bottom"]) q(`.marker.${side}`).textContent = s.markers[side] || "";
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

  function measure(s, m) {
    const sp = s.spacing;
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
    document.getElementById("measure").textContent = measure(vp.series, last) +
      (vp.series.spacing && vp.series.spacing.source === "ImagerPixelSpacing" ? ` (${T.imager_spacing})` : "");
  }

  let attributesTimer = 0;
  function attributesSoon(vp) {
    if (vp !== active) return;
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
        vp.show((vp.frame + 1) % vp.series.frames.length);
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
    else if (what === "layout") layout(viewports.length === 1 ? 2 : 1);
  }

  function layout(count) {
    const box = document.getElementById("viewports");
    while (viewports.length < count) {
      const el = box.querySelector(".viewport").cloneNode(true);
      box.append(el);
      const vp = new Viewport(el);
      vp.tool = viewports[0].tool;
      viewports.push(vp);
      vp.open(Math.min(series.length - 1, 1));
    }
    while (viewports.length > count) viewports.pop().el.remove();
    box.className = count === 2 ? "two" : "one";
    activate(viewports[0]);
    for (const vp of viewports) vp.draw();
  }

  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, textarea, select") || !active) return;
    const keys = {
      ArrowDown: () => active.show(active.frame + 1), ArrowUp: () => active.show(active.frame - 1),
      PageDown: () => active.show(active.frame + 10), PageUp: () => active.show(active.frame - 10),
      Home: () => active.show(0), End: () => active.show(active.series.frames.length - 1),
      w: () => setTool("window"), p: () => setTool("pan"), z: () => setTool("zoom"),
      s: () => setTool("scroll"), m: () => setTool("length"), a: () => setTool("angle"),
      i: () => act("invert"), f: () => act("fit"), r: () => act("reset"), " ": () => act("cine"),
      t: () => act("layout"),
    };
    const presets = Object.keys(active.series.presets);
    if (/^[1-9]$/.test(e.key) && presets[Number(e.key) - 1]) { preset(presets[Number(e.key) - 1]); e.preventDefault(); return; }
    if (keys[e.key]) { keys[e.key](); e.preventDefault(); }
  });
  for (const b of document.querySelectorAll("[data-tool]")) b.addEventListener("click", () => setTool(b.dataset.tool));
  for (const b of document.querySelectorAll("[data-act]")) b.addEventListener("click", () => act(b.dataset.act));
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
    viewports[0].open(firstToRead(series));
    showPresets();
    setTool("window");
  })();
})();
