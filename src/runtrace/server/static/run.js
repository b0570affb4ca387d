// The run page's timeline: a side panel with the selected span, #span=<id> links, keyboard moves,
// and the rest of a long timeline fetched a page at a time. No libraries.
//
// Every value from a span reaches the page through textContent (never innerHTML), so a span
// attribute holding markup stays text. The JSON comes from /api/runs/{id}/spans[/{span_id}].
(function () {
  "use strict";

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var waterfall = document.getElementById("waterfall");
    var panel = document.getElementById("span-panel");
    if (!waterfall || !panel) { return; }
    var split = document.getElementById("run-split");
    var title = document.getElementById("sp-title");
    var body = document.getElementById("sp-body");
    var more = document.getElementById("more-spans");
    var count = document.getElementById("spans-count");
    var runId = waterfall.dataset.runId;
    var total = parseInt(waterfall.dataset.total, 10) || 0;
    var shown = parseInt(waterfall.dataset.shown, 10) || 0;
    var base = "/api/runs/" + encodeURIComponent(runId) + "/spans";
    var cache = {};
    var selected = null;
    var loading = null;

    function rows() { return Array.prototype.slice.call(waterfall.querySelectorAll(".wf-span")); }
    function rowOf(spanId) {
      return rows().filter(function (r) { return r.dataset.spanId === spanId; })[0] || null;
    }

    // --- the rest of the timeline, on demand -------------------------------------------
    function flagNode(flag) { return el("span", "flag f-" + flag.replace(/ /g, "-"), flag); }

    // "duplicate of <the span that counts the call>": a link that opens that span in the panel
    function duplicateNode(dup) {
      var note = el("span", "flag f-duplicate dup-of");
      if (!dup.of_span_id) { note.textContent = "duplicate, not counted"; return note; }
      note.appendChild(document.createTextNode("duplicate of "));
      var link = el("a", "dup-link", dup.of_name || dup.of_span_id);
      link.href = "#span=" + dup.of_span_id;
      note.appendChild(link);
      return note;
    }

    function buildRow(row) {
      var dup = row.duplicate;
      var span = el("div", "wf-span k-" + row.kind + (dup ? " dup" : ""));
      span.id = "span-" + row.span_id;
      span.dataset.spanId = row.span_id;
      if (dup) { span.dataset.dupRule = dup.rule; }
      var line = el("div", "wf-row");
      var name = el("span", "wf-name");
      name.style.paddingLeft = (row.depth * 14) + "px";
      name.title = row.name;
      name.appendChild(document.createTextNode(row.name));
      if (row.subject) { name.appendChild(document.createTextNode(" ")); name.appendChild(el("span", "wf-subject", row.subject)); }
      row.flags.forEach(function (f) {
        if (f === "duplicate") { return; }
        name.appendChild(document.createTextNode(" "));
        name.appendChild(flagNode(f));
      });
      if (dup) { name.appendChild(document.createTextNode(" ")); name.appendChild(duplicateNode(dup)); }
      var track = el("span", "wf-track");
      var bar = el("span", "wf-bar");
      bar.style.left = row.offset_pct + "%";
      bar.style.width = row.width_pct + "%";
      bar.title = row.kind + " at +" + row.offset_text;
      track.appendChild(bar);
      var cost = el("span", "num");
      if (dup) {
        if (row.cost_usd !== null && row.cost_usd !== undefined) {
          var struck = el("s", "not-counted", row.cost_text);
          struck.title = "not counted: another span counts this call";
          cost.appendChild(struck);
        } else { cost.appendChild(el("span", "not-counted", "not counted")); }
      } else if (row.cost_text === "unpriced") { cost.appendChild(el("span", "unpriced", "unpriced")); } else { cost.textContent = row.cost_text; }
      line.appendChild(name);
      line.appendChild(track);
      line.appendChild(el("span", "num", row.duration_text));
      line.appendChild(cost);
      span.appendChild(line);
      return span;
    }

    function updateCount() {
      if (count) { count.textContent = shown + " of " + total + " spans shown"; }
      if (more && shown >= total) { more.hidden = true; }
    }

    function loadMore() {
      if (shown >= total) { return Promise.resolve(false); }
      if (loading) { return loading; }
      if (more) { more.disabled = true; }
      loading = fetch(base + "?offset=" + shown + "&limit=200", {credentials: "same-origin"})
        .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
        .then(function (page) {
          var frag = document.createDocumentFragment();
          page.rows.forEach(function (row) { frag.appendChild(buildRow(row)); });
          waterfall.appendChild(frag);
          shown += page.rows.length;
          total = page.total;
          updateCount();
          return page.rows.length > 0;
        })
        .catch(function (err) { if (count) { count.textContent = "could not load more spans: " + err.message; } return false; })
        .then(function (added) { loading = null; if (more) { more.disabled = false; } return added; });
      return loading;
    }
    if (more) { more.addEventListener("click", function () { loadMore(); }); }

    // --- the side panel ---------------------------------------------------------------
    function fact(dl, label, value) {
      if (value === undefined || value === null || value === "") { return; }
      dl.appendChild(el("dt", null, label));
      dl.appendChild(el("dd", null, value));
    }

    function pre(text) { return el("pre", "content", text); }

    function chatNode(messages) {
      var box = el("div", "chat");
      messages.forEach(function (m) {
        var msg = el("div", "msg role-" + m.role.replace(/[^a-z_-]/gi, "") + (m.output ? " output" : ""));
        msg.appendChild(el("div", "msg-role", m.role + (m.output ? " (response)" : "") + (m.finish_reason ? " · " + m.finish_reason : "")));
        m.parts.forEach(function (p) {
          if (p.type === "tool_call") {
            var call = el("div", "msg-tool-call");
            call.appendChild(el("div", "msg-tool-name", "calls " + p.name + (p.id ? "  [" + p.id + "]" : "")));
            call.appendChild(pre(p.arguments));
            msg.appendChild(call);
          } else if (p.type === "tool_result") {
            var result = el("div", "msg-tool-result");
            result.appendChild(el("div", "msg-tool-name", "tool result" + (p.id ? "  [" + p.id + "]" : "")));
            result.appendChild(pre(p.text));
            msg.appendChild(result);
          } else {
            msg.appendChild(el("div", "msg-text", p.text));
          }
        });
        box.appendChild(msg);
      });
      return box;
    }

    function render(d) {
      title.textContent = d.name;
      body.textContent = "";
      if (d.flags.length) {
        var flags = el("p", "sp-flags");
        d.flags.forEach(function (f) { flags.appendChild(flagNode(f)); flags.appendChild(document.createTextNode(" ")); });
        body.appendChild(flags);
      }
      if (d.unpriced) { body.appendChild(el("p", "sp-unpriced", d.unpriced)); }
      if (d.duplicate) {
        var dup = el("p", "sp-duplicate", d.duplicate.sentence);
        if (d.duplicate.of_span_id) {
          dup.appendChild(document.createTextNode(" "));
          var link = el("a", "dup-link", "Open " + (d.duplicate.of_name || d.duplicate.of_span_id));
          link.href = "#span=" + d.duplicate.of_span_id;
          dup.appendChild(link);
        }
        body.appendChild(dup);
      }
      if (d.status === "ERROR") { body.appendChild(el("p", "sp-error", "Error" + (d.status_message ? ": " + d.status_message : ""))); }
      var dl = el("dl", "facts");
      fact(dl, "kind", d.kind);
      fact(dl, "model", d.model ? d.model + (d.provider ? " (" + d.provider + ")" : "") : null);
      if (d.kind === "llm") {
        fact(dl, "tokens", "in " + d.text.input_tokens + " (cached " + d.text.cached_input_tokens + ") · out " +
             d.text.output_tokens + " (reasoning " + d.text.reasoning_tokens + ")");
        fact(dl, "cost", d.text.cost + (d.cost_source ? " · source " + d.cost_source : "") +
             (d.duplicate ? " · not counted (duplicate)" : ""));
      }
      fact(dl, "tool", d.tool_name);
      fact(dl, "status", d.status + (d.status_message && d.status !== "ERROR" ? ": " + d.status_message : ""));
      fact(dl, "start", d.text.start ? d.text.start + (d.text.offset ? " (" + d.text.offset + ")" : "") : null);
      fact(dl, "duration", d.text.duration);
      fact(dl, "span", d.span_id);
      fact(dl, "trace", d.trace_id);
      body.appendChild(dl);
      if (d.chat.length) {
        body.appendChild(el("h4", null, "Conversation"));
        body.appendChild(chatNode(d.chat));
      }
      if (d.tool.arguments !== undefined) { body.appendChild(el("h4", null, "Arguments")); body.appendChild(pre(d.tool.arguments)); }
      if (d.tool.result !== undefined) { body.appendChild(el("h4", null, "Result")); body.appendChild(pre(d.tool.result)); }
      if (!d.chat.length && d.tool.arguments === undefined && (d.kind === "llm" || d.kind === "tool")) {
        body.appendChild(el("p", "hint", "No content was captured for this span (capture is off by default)."));
      }
      if (d.events.length) {
        body.appendChild(el("h4", null, "Events"));
        var ul = el("ul", "events");
        d.events.forEach(function (e) {
          var li = el("li");
          li.appendChild(el("strong", null, e.name));
          li.appendChild(document.createTextNode(" "));
          li.appendChild(el("span", "dim", e.time));
          Object.keys(e.attributes || {}).forEach(function (k) {
            li.appendChild(document.createTextNode(" "));
            var v = e.attributes[k];
            li.appendChild(el("code", null, k + "=" + (typeof v === "string" ? v : JSON.stringify(v))));
          });
          ul.appendChild(li);
        });
        body.appendChild(ul);
      }
      body.appendChild(el("h4", null, "Attributes"));
      var table = el("table", "attrs");
      d.attribute_rows.forEach(function (pair) {
        var tr = el("tr");
        tr.appendChild(el("th", null, pair[0]));
        tr.appendChild(el("td", null, pair[1]));
        table.appendChild(tr);
      });
      body.appendChild(table);
    }

    function open() {
      panel.hidden = false;
      if (split) { split.classList.add("has-panel"); }
    }

    function close() {
      panel.hidden = true;
      if (split) { split.classList.remove("has-panel"); }
      if (selected) { var r = rowOf(selected); if (r) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); } }
      selected = null;
      if (location.hash) { history.replaceState(null, "", location.pathname + location.search); }
    }

    function select(spanId, scroll) {
      if (selected) { var old = rowOf(selected); if (old) { old.classList.remove("selected"); old.removeAttribute("aria-selected"); } }
      selected = spanId;
      var row = rowOf(spanId);
      if (row) {
        row.classList.add("selected");
        row.setAttribute("aria-selected", "true");
        if (scroll) { row.scrollIntoView({block: "nearest"}); }
      }
      if (location.hash !== "#span=" + spanId) { history.replaceState(null, "", "#span=" + spanId); }
      open();
      panel.dataset.spanId = spanId;
      if (cache[spanId]) { render(cache[spanId]); return; }
      title.textContent = row ? row.querySelector(".wf-name").title : "Span";
      body.textContent = "";
      body.appendChild(el("p", "hint", "loading…"));
      fetch(base + "/" + encodeURIComponent(spanId), {credentials: "same-origin"})
        .then(function (r) {
          return r.json().then(function (data) { if (!r.ok) { throw new Error(data.error || ("HTTP " + r.status)); } return data; });
        })
        .then(function (d) { cache[spanId] = d; if (selected === spanId) { render(d); } })
        .catch(function (err) {
          if (selected !== spanId) { return; }
          body.textContent = "";
          body.appendChild(el("p", "sp-error", "Cannot show span " + spanId + ": " + err.message));
        });
    }

    function move(step) {
      var list = rows();
      var at = selected ? list.indexOf(rowOf(selected)) : -1;
      var next = at + step;
      if (at < 0) { next = step > 0 ? 0 : list.length - 1; }
      if (next >= list.length) {
        loadMore().then(function (added) { if (added) { move(step); } });
        return;
      }
      if (next < 0) { return; }
      select(list[next].dataset.spanId, true);
    }

    // a "duplicate of" link opens the span that counts the call, in the timeline and the panel
    document.addEventListener("click", function (event) {
      var link = event.target.closest && event.target.closest("a.dup-link");
      if (!link) { return; }
      event.preventDefault();
      event.stopPropagation();
      select(decodeURIComponent(link.getAttribute("href").slice(6)), true);
    }, true);

    waterfall.addEventListener("click", function (event) {
      var line = event.target.closest(".wf-span > summary, .wf-span > .wf-row");
      if (!line) { return; }
      event.preventDefault(); // the panel shows the details; "expand all" still opens them inline
      select(line.parentNode.dataset.spanId, false);
    });
    document.getElementById("sp-close").addEventListener("click", close);

    document.addEventListener("keydown", function (event) {
      var tag = (event.target && event.target.tagName) || "";
      if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || event.ctrlKey || event.metaKey || event.altKey) { return; }
      var arrows = !panel.hidden;
      if (event.key === "j" || (arrows && event.key === "ArrowDown")) { event.preventDefault(); move(1); }
      else if (event.key === "k" || (arrows && event.key === "ArrowUp")) { event.preventDefault(); move(-1); }
      else if (event.key === "Escape" && !panel.hidden) { event.preventDefault(); close(); }
    });

    function fromHash() {
      var hash = location.hash;
      if (hash.indexOf("#span=") === 0) { select(decodeURIComponent(hash.slice(6)), true); }
      else if (hash.indexOf("#span-") === 0) { select(hash.slice(6), false); }
    }
    window.addEventListener("hashchange", fromHash);
    updateCount();
    fromHash();
  });
})();
