// The sender's new case: files go up in the background in resumable chunks while the
// clinical form is filled in; a cut connection is retried, a closed tab resumes when the
// same files are chosen again (they are recognised by name, size and date). Then the
// images that may show identity are checked here (confirmed, or masked with rectangles).
"use strict";
(() => {
  const CHUNK = 256 * 1024;
  const form = document.getElementById("new-case");
  const csrf = form.elements.csrf.value;
  const T = JSON.parse(document.getElementById("i18n").textContent);
  const $ = (id) => document.getElementById(id);
  // Another study for a case: its own upload, and no form (a new case's is left alone).
  const adding = form.dataset.adding === "1";
  const UPLOAD_KEY = adding ? "tsf-add-study-upload" : "tsf-new-case-upload";
  const FORM_KEY = "tsf-new-case-form";
  let state = JSON.parse(localStorage.getItem(UPLOAD_KEY) || "null") || { batch: null, files: {} };
  let studies = [];
  let busy = false;
  // What the person chose, whole from the first second (files not started included), and
  // the bytes the node confirmed since this upload began, for a true rate and time left.
  let selection = null; // { keys, bytes, count }
  let measure = null; // { startedAt, startedDone }
  const save = () => localStorage.setItem(UPLOAD_KEY, JSON.stringify(state));
  const fingerprint = (f) => `${f.webkitRelativePath || f.name}|${f.size}|${f.lastModified}`;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const fmt = (s, values) => s.replace(/\{(\w+)\}/g, (_, k) => values[k]);
  const lang = document.documentElement.lang;
  const number = (n, digits = 0) => n.toLocaleString(lang, { maximumFractionDigits: digits });
  const fixed = (n, digits) =>
    n.toLocaleString(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  // A size in the unit its magnitude calls for (ko, Mo, Go): a small file is never "0 Mo".
  const UNITS = [[1e9, T.gb, 1], [1e6, T.mb, 1], [1e3, T.kb, 0]];
  const unitOf = (n) => UNITS.find(([scale]) => n >= scale) || UNITS[UNITS.length - 1];
  const inUnit = (n, [scale, , digits]) => fixed(digits ? n / scale : Math.ceil(n / scale), digits);
  const size = (n) => `${inUnit(n, unitOf(n))} ${unitOf(n)[1]}`;
  // A text with a count: its form for that count in the page's language (the forms come
  // by plural category from the node's catalogue), the count written as the language does.
  const rules = new Intl.PluralRules(lang);
  const counted = (forms, count, values = {}) =>
    fmt(forms[rules.select(count)] ?? forms.other, { ...values, count: number(count) });

  async function call(method, url, body, type, extra = {}) {
    const headers = { "X-CSRF-Token": csrf, ...extra };
    if (type) headers["Content-Type"] = type;
    return fetch(url, { method, body, headers, credentials: "same-origin" });
  }

  // Retries what the network broke, waiting longer each time (at most 30 s).
  async function patiently(step) {
    for (let wait = 1000; ; wait = Math.min(wait * 2, 30000)) {
      try {
        return await step();
      } catch (err) {
        if (!(err instanceof TypeError)) throw err; // not a network failure
        $("progress-text").textContent = T.retrying;
        await sleep(wait);
      }
    }
  }

  async function start(file) {
    const key = fingerprint(file);
    let entry = state.files[key];
    if (entry && entry.done) return entry;
    if (entry) {
      const r = await fetch(`/web/uploads/${entry.id}`, { credentials: "same-origin" });
      if (r.ok) {
        entry.offset = (await r.json()).offset;
        return entry;
      }
      delete state.files[key];
    }
    const r = await call("POST", "/web/uploads",
      JSON.stringify({ name: file.name, size: file.size, batch: state.batch }), "application/json");
    if (r.status === 409 || r.status === 404) { // that batch was imported or is gone
      reset();
      return start(file);
    }
    if (!r.ok) throw new Error(await r.text());
    const made = await r.json();
    state.batch = made.batch;
    entry = state.files[key] = { id: made.id, name: file.name, size: file.size, offset: 0, done: false };
    save();
    return entry;
  }

  async function send(file) {
    const entry = await patiently(() => start(file));
    while (!entry.done) {
      const r = await patiently(() => call("PATCH", `/web/uploads/${entry.id}`,
        file.slice(entry.offset, entry.offset + CHUNK), "application/offset+octet-stream",
        { "Upload-Offset": String(entry.offset) }));
      if (r.status === 409) { // the node holds a different offset: continue from there
        entry.offset = (await r.json()).offset;
        continue;
      }
      if (!r.ok) throw new Error(await r.text());
      const got = await r.json();
      entry.offset = got.offset;
      entry.done = got.done;
      save();
      progress();
    }
  }

  // Bytes the node holds of a file of the selection (0 for one not started yet).
  const sent = (key) => {
    const f = state.files[key];
    return f ? (f.done ? f.size : f.offset) : 0;
  };

  function progress() {
    let total, done, count;
    if (selection) {
      ({ bytes: total, count } = selection);
      done = selection.keys.reduce((a, key) => a + sent(key), 0);
    } else { // back on the page, before the files are chosen again: what was started
      const files = Object.values(state.files);
      total = files.reduce((a, f) => a + f.size, 0);
      done = files.reduce((a, f) => a + (f.done ? f.size : f.offset), 0);
      count = files.length;
    }
    $("progress").max = total || 1;
    $("progress").value = done;
    $("progress-text").textContent = counted(done === total ? T.uploaded : T.uploading, count, {
      done: inUnit(done, unitOf(total)), size: size(total), // 0,0 / 11,1 Mo: the total's unit
    });
    timeLeft(done, total);
    estimate(total);
  }

  // The rate this upload has had (bytes the node confirmed, over the time since it
  // began) and the time left for the rest of the selection at that rate.
  function timeLeft(done, total) {
    const box = $("time-left");
    if (!measure || done >= total) { box.textContent = ""; return; }
    const seconds = (performance.now() - measure.startedAt) / 1000;
    const bytes = done - measure.startedDone;
    if (seconds < 1 || bytes <= 0) { box.textContent = ""; return; }
    const rate = bytes / seconds;
    const minutes = (total - done) / rate / 60;
    box.textContent = fmt(minutes < 1 ? T.left_seconds : T.left_minutes, {
      kbits: number((rate * 8) / 1000),
      left: number(minutes < 1 ? Math.max(1, Math.round(minutes * 60)) : Math.round(minutes)),
    });
  }

  function estimate(bytes) {
    const rate = Number(form.dataset.rate);
    if (!bytes) return;
    if (!rate) {
      $("estimate").textContent = T.estimate_unmeasured;
      return;
    }
    const minutes = Math.max(1, Math.round(bytes / rate / 60));
    $("estimate").textContent = fmt(T.estimate, {
      minutes: number(minutes), size: size(bytes), kbits: number((rate * 8) / 1000),
    });
  }

  async function upload(files) {
    if (busy) return;
    busy = true;
    $("resume").hidden = true;
    try {
      const wanted = files.filter((f) => f.size > 0);
      if (wanted.length < files.length) $("estimate").textContent = T.skipped_empty;
      for (const f of wanted) {
        const key = fingerprint(f);
        if (!state.files[key]) state.files[key] = { name: f.name, size: f.size, offset: 0, done: false, id: null };
      }
      // Entries without an id have not been started: start() makes them.
      for (const [key, e] of Object.entries(state.files)) if (!e.id) delete state.files[key];
      const keys = wanted.map(fingerprint);
      selection = { keys, bytes: wanted.reduce((a, f) => a + f.size, 0), count: wanted.length };
      measure = { startedAt: performance.now(), startedDone: keys.reduce((a, key) => a + sent(key), 0) };
      progress();
      for (const f of wanted) await send(f);
      await importBatch();
    } catch (err) {
      $("progress-text").textContent = String(err.message || err);
    } finally {
      busy = false;
    }
  }

  async function importBatch() {
    if (!state.batch) return;
    $("batch").value = state.batch;
    $("progress-text").textContent = T.importing;
    const r = await patiently(() => call("POST", `/web/batches/${state.batch}/import`));
    if (r.status === 404) return reset();
    if (!r.ok) throw new Error(await r.text());
    const got = await r.json();
    studies = got.studies;
    progress();
    showStudies(got.rejected);
  }

  function showStudies(rejected) {
    const box = $("studies");
    box.replaceChildren();
    if (!studies.length) box.append(el("p", { className: "error" }, T.nothing_found));
    studies.forEach((s, i) => {
      const label = el("label", {}, "");
      const radio = el("input", { type: "radio", name: "study_uid", value: s.study_uid, required: true });
      radio.checked = i === 0;
      radio.addEventListener("change", ready);
      label.append(radio, ` ${T.study} ${s.modality} · ${counted(T.images_count, s.instances)}, ` +
        `${counted(T.series_count, s.series)}, ${size(s.bytes)}`);
      box.append(label);
      if (s.flags.length) box.append(el("p", { className: "notice" }, T.to_check));
      for (const flag of s.flags) box.append(flagBox(s, flag));
    });
    if (rejected.length) {
      box.append(el("h3", {}, T.rejected));
      const list = el("ul", {}, "");
      for (const r of rejected) list.append(el("li", {}, `${r.name}: ${r.reason}`));
      box.append(list);
    }
    ready();
  }

  function el(tag, props, text) {
    const node = Object.assign(document.createElement(tag), props);
    if (text) node.textContent = text;
    return node;
  }

  // One image to check: the reasons, the image, rectangles drawn on it, two decisions.
  function flagBox(study, flag) {
    const box = el("div", { className: "flag" }, "");
    box.dataset.sop = flag.sop_uid;
    box.append(el("p", {}, flag.reasons.join(" · ")));
    const state = el("p", { className: `check ${flag.state}` }, T[`state_${flag.state}`]);
    const wrap = el("div", { className: "mask-tool" }, "");
    const img = el("img", { alt: T.to_check, src: `/web/studies/${study.study_uid}/images/${flag.sop_uid}.png?${flag.decided_ms}` });
    const canvas = el("canvas", {}, "");
    wrap.append(img, canvas);
    const boxes = [];
    let from = null;
    const at = (e) => {
      const r = canvas.getBoundingClientRect();
      return [e.clientX - r.left, e.clientY - r.top];
    };
    const draw = (extra) => {
      const g = canvas.getContext("2d");
      g.clearRect(0, 0, canvas.width, canvas.height);
      g.fillStyle = "rgba(0,0,0,.75)";
      g.strokeStyle = "#e8a400";
      for (const b of extra ? [...boxes, extra] : boxes) { g.fillRect(...b); g.strokeRect(...b); }
    };
    img.addEventListener("load", () => {
      canvas.width = img.clientWidth;
      canvas.height = img.clientHeight;
      draw();
    });
    canvas.addEventListener("pointerdown", (e) => { from = at(e); canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointermove", (e) => {
      if (!from) return;
      const [x, y] = at(e);
      draw([from[0], from[1], x - from[0], y - from[1]]);
    });
    canvas.addEventListener("pointerup", (e) => {
      if (!from) return;
      const [x, y] = at(e);
      const b = [Math.min(x, from[0]), Math.min(y, from[1]), Math.abs(x - from[0]), Math.abs(y - from[1])];
      if (b[2] > 2 && b[3] > 2) boxes.push(b);
      from = null;
      draw();
    });
    const decide = async (mask) => {
      const scale = flag.columns / canvas.width;
      const body = { image: flag.sop_uid };
      if (mask) body.mask = boxes.map((b) => b.map((v) => Math.round(v * scale)));
      const r = await patiently(() => call("POST", `/web/studies/${study.study_uid}/review`, JSON.stringify(body), "application/json"));
      if (!r.ok) { state.textContent = await r.text(); return; }
      const fresh = await r.json();
      studies = studies.map((s) => (s.study_uid === fresh.study_uid ? fresh : s));
      showStudies([]);
    };
    const buttons = el("p", {}, "");
    const confirm = el("button", { type: "button", className: "confirm" }, T.confirm_image);
    const mask = el("button", { type: "button", className: "mask" }, T.mask_image);
    const clear = el("button", { type: "button", className: "clear" }, T.clear);
    confirm.addEventListener("click", () => decide(false));
    mask.addEventListener("click", () => boxes.length && decide(true));
    clear.addEventListener("click", () => { boxes.length = 0; draw(); });
    buttons.append(confirm, " ", mask, " ", clear);
    box.append(state, el("p", { className: "help" }, T.draw_help), wrap, buttons);
    return box;
  }

  function ready() {
    const chosen = form.querySelector("input[name=study_uid]:checked");
    const study = studies.find((s) => chosen && s.study_uid === chosen.value);
    const ok = Boolean(study) && study.pending === 0;
    $("submit").disabled = !ok;
    if (ok) { $("submit-help").textContent = T.ready; estimate(study.bytes); }
  }

  function reset() {
    state = { batch: null, files: {} };
    studies = [];
    save();
    $("batch").value = "";
  }

  // The form is kept in this browser as it is typed, so a closed tab loses nothing.
  const kept = adding ? {} : JSON.parse(localStorage.getItem(FORM_KEY) || "{}");
  for (const [name, value] of Object.entries(kept)) {
    const field = form.elements[name];
    if (!field || name === "csrf" || name === "batch" || name === "study_uid") continue;
    if (field instanceof RadioNodeList) {
      for (const r of field) if (r.value === value) r.checked = true;
    } else if (!field.value || field instanceof HTMLSelectElement) field.value = value;
  }
  // The age's highest value follows its unit (130 years, 23 months, 52 weeks, 90 days).
  const ageUnit = form.elements.age_unit;
  const ageMax = () => { form.elements.age.max = ageUnit.selectedOptions[0].dataset.max; };
  if (ageUnit) {
    ageUnit.addEventListener("change", ageMax);
    ageMax();
  }
  if (!adding) form.addEventListener("input", () => {
    const out = {};
    // The local reference names the patient: never kept in the browser.
    for (const [k, v] of new FormData(form)) {
      if (k !== "csrf" && k !== "local_reference" && typeof v === "string") out[k] = v;
    }
    localStorage.setItem(FORM_KEY, JSON.stringify(out));
  });
  if (!adding) form.addEventListener("submit", () => { localStorage.removeItem(FORM_KEY); });

  const pick = (e) => upload([...e.target.files]);
  $("pick-files").addEventListener("change", pick);
  $("pick-folder").addEventListener("change", pick);
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload(await dropped(e.dataTransfer));
  });

  // Files of a drop, folders walked.
  async function dropped(transfer) {
    const out = [];
    const walk = async (entry) => {
      if (entry.isFile) out.push(await new Promise((ok, ko) => entry.file(ok, ko)));
      else if (entry.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((ok, ko) => reader.readEntries(ok, ko));
          if (!batch.length) break;
          for (const child of batch) await walk(child);
        }
      }
    };
    const entries = [...transfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    if (!entries.length) return [...transfer.files];
    for (const entry of entries) await walk(entry);
    return out;
  }

  // Back on the page: the last upload is finished (show its studies) or waits for the
  // same files to be chosen again.
  const files = Object.values(state.files);
  if (files.length && files.every((f) => f.done)) importBatch().catch((err) => {
    $("progress-text").textContent = String(err.message || err);
  });
  else if (files.length) {
    $("resume").hidden = false;
    progress();
  }
})();
