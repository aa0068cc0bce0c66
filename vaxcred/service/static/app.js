// The border officer's page: paste, upload or scan a passport QR, show a large verdict with the name and
// date of birth. Every server value is written with textContent (never innerHTML): names in a QR code are
// untrusted text. No inline script (the service's CSP forbids it); nothing is loaded from elsewhere.
"use strict";

(function () {
  const RESULT_TTL_MS = 120000; // the result (personal data) is cleared from the screen after two minutes
  let strings = null;
  let lang = "vi";
  let lastResult = null;
  let lastError = null;
  let trust = null;
  let clearTimer = null;
  let stream = null;
  let scanTimer = null;

  const $ = (id) => document.getElementById(id);

  function t(key) {
    const table = strings && strings[lang] && strings[lang].ui;
    return (table && table[key]) || key;
  }

  function setText(el, text) {
    el.textContent = text == null ? "" : String(text);
  }

  function applyLanguage() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => setText(el, t(el.dataset.i18n)));
    document.querySelectorAll("button.lang").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.lang === lang)));
    document.title = t("title");
    $("camera-button").textContent = stream ? t("camera_stop") : t("camera_start");
    renderTrust();
    if (lastResult) renderResult(lastResult);
    if (lastError) renderError(lastError);
  }

  function formatTime(iso) {
    const d = new Date(iso);
    if (isNaN(d.getTime())) return "—";
    return d.toLocaleString(lang === "vi" ? "vi-VN" : "en-GB", { timeZoneName: "short" });
  }

  function formatAge(seconds) {
    if (typeof seconds !== "number" || seconds < 0) return "";
    if (seconds < 3600) return "(" + t("minutes_ago").replace("{n}", String(Math.floor(seconds / 60))) + ")";
    return "(" + t("hours_ago").replace("{n}", String(Math.floor(seconds / 3600))) + ")";
  }

  function renderTrust() {
    if (!trust) return;
    setText($("trust-updated"), formatTime(trust.updated_at));
    setText($("trust-age"), formatAge(trust.age_seconds));
    $("trust-stale").hidden = !!trust.fresh;
    $("test-banner").hidden = trust.environment === "PROD";
  }

  async function loadTrust() {
    try {
      const response = await fetch("/trust", { cache: "no-store" });
      if (response.ok) {
        trust = await response.json();
        renderTrust();
      }
    } catch (e) {
      /* the footer keeps its dash: the verdicts carry their own trust summary */
    }
  }

  function fillList(listEl, blockEl, items) {
    listEl.replaceChildren();
    items.forEach((item) => {
      const li = document.createElement("li");
      li.dataset.code = item.code;
      setText(li, (item.message && item.message[lang]) || item.code);
      listEl.appendChild(li);
    });
    blockEl.hidden = items.length === 0;
  }

  function renderResult(result) {
    lastError = null;
    $("error").hidden = true;
    const verdict = $("verdict");
    verdict.hidden = false;
    verdict.className = "verdict " + result.status;
    verdict.dataset.status = result.status;
    setText($("verdict-status"), t("status_" + result.status));
    setText($("verdict-hint"), t("hint_" + result.status));
    const holder = result.holder;
    $("holder").hidden = !holder;
    if (holder) {
      setText($("holder-name"), [holder.fn, holder.gn].filter(Boolean).join(" "));
      setText($("holder-latin"), [holder.fnt, holder.gnt].filter(Boolean).join(" / "));
      setText($("holder-dob"), holder.dob || t("dob_missing"));
    }
    fillList($("reasons"), $("reasons-block"), result.reasons || []);
    fillList($("notes"), $("notes-block"), result.notes || []);
    if (result.trust) {
      trust = Object.assign({}, trust || {}, result.trust);
      renderTrust();
    }
    $("result").hidden = false;
  }

  function renderError(error) {
    $("result").hidden = false;
    $("verdict").hidden = true;
    $("holder").hidden = true;
    $("reasons-block").hidden = true;
    $("notes-block").hidden = true;
    const el = $("error");
    el.hidden = false;
    setText(el, error.network ? t("error_network") : t("error_request") + ": " + error.code);
  }

  function scheduleClear() {
    if (clearTimer) clearTimeout(clearTimer);
    clearTimer = setTimeout(clearResult, RESULT_TTL_MS);
  }

  function clearResult() {
    lastResult = null;
    lastError = null;
    $("result").hidden = true;
    $("holder-name").textContent = "";
    $("holder-latin").textContent = "";
    $("holder-dob").textContent = "";
  }

  async function send(body, headers) {
    setText($("verdict-status"), t("checking"));
    try {
      const response = await fetch("/verify", { method: "POST", body: body, headers: headers, cache: "no-store" });
      const data = await response.json().catch(() => ({}));
      if (response.ok) {
        lastResult = data;
        renderResult(data);
      } else {
        lastResult = null;
        lastError = { code: (data.error && data.error.code) || "HTTP " + response.status };
        renderError(lastError);
      }
    } catch (e) {
      lastResult = null;
      lastError = { network: true };
      renderError(lastError);
    }
    scheduleClear();
  }

  function verifyText(text) {
    const qr = text.trim();
    if (!qr) return;
    send(JSON.stringify({ qr: qr }), { "Content-Type": "application/json" });
  }

  // Phone photos are often larger than the service accepts (2 MiB): those are scaled down in the browser
  // (longest side 1600 px, JPEG) before upload. Smaller files go as they are.
  const MAX_UPLOAD_BYTES = 1500000;
  const MAX_SIDE = 1600;

  async function shrink(file) {
    if (file.size <= MAX_UPLOAD_BYTES || typeof createImageBitmap !== "function") return file;
    try {
      const bitmap = await createImageBitmap(file);
      const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      bitmap.close();
      const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
      return blob || file;
    } catch (e) {
      return file; // not an image the browser can read: the service says what is wrong with it
    }
  }

  async function verifyFile(file) {
    const upload = await shrink(file);
    const form = new FormData();
    form.append("image", upload, upload === file ? file.name || "qr" : "photo.jpg");
    send(form, {});
  }

  // --- camera: BarcodeDetector where the browser has it, else the bundled jsQR decoder ----------------
  function stopCamera() {
    if (scanTimer) clearInterval(scanTimer);
    scanTimer = null;
    if (stream) stream.getTracks().forEach((track) => track.stop());
    stream = null;
    $("camera").hidden = true;
    $("camera-button").textContent = t("camera_start");
  }

  async function makeDetector() {
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) {
          const detector = new window.BarcodeDetector({ formats: ["qr_code"] });
          return async (video) => {
            const codes = await detector.detect(video);
            return codes.length ? codes[0].rawValue : null;
          };
        }
      } catch (e) {
        /* fall back to jsQR */
      }
    }
    const canvas = document.createElement("canvas");
    const context = canvas.getContext("2d", { willReadFrequently: true });
    return async (video) => {
      const w = video.videoWidth, h = video.videoHeight;
      if (!w || !h || typeof window.jsQR !== "function") return null;
      canvas.width = w;
      canvas.height = h;
      context.drawImage(video, 0, 0, w, h);
      const code = window.jsQR(context.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: "attemptBoth" });
      return code ? code.data : null;
    };
  }

  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      lastError = null;
      setText($("camera-status"), t("camera_unavailable"));
      $("camera").hidden = false;
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (e) {
      setText($("camera-status"), t("camera_unavailable"));
      $("camera").hidden = false;
      return;
    }
    const video = $("camera-video");
    video.srcObject = stream;
    await video.play().catch(() => undefined);
    $("camera").hidden = false;
    setText($("camera-status"), t("camera_scanning"));
    $("camera-button").textContent = t("camera_stop");
    const detect = await makeDetector();
    let busy = false;
    scanTimer = setInterval(async () => {
      if (busy || !stream) return;
      busy = true;
      try {
        const text = await detect(video);
        if (text && text.startsWith("HC1:")) {
          stopCamera();
          $("qr-text").value = text;
          verifyText(text);
        }
      } finally {
        busy = false;
      }
    }, 200);
  }

  // --- wiring -----------------------------------------------------------------------------------------
  function setLanguage(next) {
    lang = next === "en" ? "en" : "vi";
    try {
      localStorage.setItem("vaxcred.lang", lang);
    } catch (e) {
      /* storage may be disabled: the choice then lasts for this page only */
    }
    applyLanguage();
  }

  async function init() {
    let saved = null;
    try {
      saved = localStorage.getItem("vaxcred.lang");
    } catch (e) {
      saved = null;
    }
    lang = saved || ((navigator.language || "vi").toLowerCase().startsWith("vi") ? "vi" : "en");
    try {
      strings = await (await fetch("/static/i18n.json")).json();
    } catch (e) {
      strings = null;
    }
    document.querySelectorAll("button.lang").forEach((b) => b.addEventListener("click", () => setLanguage(b.dataset.lang)));
    $("paste-form").addEventListener("submit", (event) => {
      event.preventDefault();
      verifyText($("qr-text").value);
    });
    $("clear-button").addEventListener("click", () => {
      $("qr-text").value = "";
      clearResult();
    });
    $("image-input").addEventListener("change", (event) => {
      const file = event.target.files && event.target.files[0];
      if (file) verifyFile(file);
      event.target.value = "";
    });
    $("camera-button").addEventListener("click", () => (stream ? stopCamera() : startCamera()));
    applyLanguage();
    await loadTrust();
    document.body.dataset.ready = "true";
  }

  document.addEventListener("DOMContentLoaded", init);
})();
