// Sluice web UI: times in the viewer's zone, and the live log. Text is only ever written
// with textContent, never as HTML.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) { el.textContent = d.toLocaleString(); }
  });
  var log = document.getElementById("log");
  if (!log || log.hasAttribute("data-ended") || !window.EventSource) { return; }
  var url = log.getAttribute("data-events") + "?after=" + encodeURIComponent(log.getAttribute("data-after"));
  var status = document.getElementById("live-status");
  var es = new EventSource(url);
  var stick = function () { return log.scrollTop + log.clientHeight >= log.scrollHeight - 4; };
  var add = function (cls, text) {
    var atEnd = stick();
    var span = document.createElement("span");
    if (cls) { span.className = cls; }
    span.textContent = text;
    log.appendChild(span);
    if (atEnd) { log.scrollTop = log.scrollHeight; }
  };
  var step = log.getAttribute("data-step") || null;
  es.addEventListener("chunk", function (e) {
    var c = JSON.parse(e.data);
    if (c.kind !== "end" && c.step !== step) { step = c.step; add("step", "── " + c.step + " ──\n"); }
    if (c.kind === "output") { add(c.stream === "stderr" ? "stderr" : "", c.text); }
    else if (c.kind === "end") { add("end", "── end of log ──\n"); es.close(); if (status) { status.textContent = "The job has ended."; } }
    else if (c.kind === "step_end") { add("step-end", c.text); }
    else { add("notice", c.text); }
  });
  es.addEventListener("error", function () { if (status) { status.textContent = "Connection lost; reconnecting…"; } });
  es.addEventListener("open", function () { if (status) { status.textContent = "This job is still running. New output appears below."; } });
});
