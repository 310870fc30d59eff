/* Live progress (EventSource, falling back to polling) and "try another card". */
(function () {
  "use strict";

  var WORDS = {
    queued: "Waiting in line",
    reserving_stock: "Reserving your items",
    charging_payment: "Charging your card",
    creating_order: "Creating your order",
    updating_inventory: "Updating the inventory",
    completed: "Order confirmed",
    failed: "Something went wrong"
  };

  function followProgress(root) {
    var bar = root.querySelector("[role=progressbar]");
    var fill = bar.querySelector(".fill");
    var step = root.querySelector("[data-step]");
    var finished = false;

    function show(data) {
      if (finished) return true;
      var done = data.status === "completed" || data.status === "failed";
      var value = data.status === "completed" ? 100 : (data.progress || 0);
      var words = WORDS[data.step || data.status] || data.message || "";
      if (data.status !== "failed") {
        bar.setAttribute("aria-valuenow", String(value));
        bar.setAttribute("aria-valuetext", value + "%: " + words);
        fill.style.width = value + "%";
      }
      step.textContent = words;
      if (done) {
        finished = true;
        // Let the full bar be seen for a moment, then show the result page.
        window.setTimeout(function () { window.location.assign(root.dataset.doneUrl); }, 700);
      }
      return done;
    }

    function poll() {
      if (finished) return;
      fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (data) { if (!show(data)) window.setTimeout(poll, 1000); })
        .catch(function () { window.setTimeout(poll, 2000); });
    }

    if (typeof window.EventSource !== "function") {
      poll();
      return;
    }
    var source = new window.EventSource(root.dataset.streamUrl);
    var heard = false;
    function fallBack() {
      source.close();
      poll();
    }
    ["progress", "completed", "failed"].forEach(function (name) {
      source.addEventListener(name, function (event) {
        heard = true;
        if (show(JSON.parse(event.data))) source.close();
      });
    });
    source.onerror = function () {
      if (!finished && (!heard || source.readyState === window.EventSource.CLOSED)) fallBack();
    };
    // A proxy that buffers the stream: nothing arrives, so poll instead.
    window.setTimeout(function () { if (!heard && !finished) fallBack(); }, 5000);
  }

  function anotherCard(form) {
    var error = form.querySelector(".form-error");
    form.addEventListener("submit", function (event) {
      if (typeof window.fetch !== "function") return;
      event.preventDefault();
      var token = form.querySelector("input[name=paymentToken]:checked");
      fetch(form.dataset.apiUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ jobId: form.dataset.jobId, paymentToken: token ? token.value : "" })
      }).then(function (response) {
        return response.json().then(function (body) {
          if (response.status === 202) {
            window.location.assign(form.dataset.progressUrl);
          } else {
            error.textContent = body.detail || "That did not work; please try again.";
            error.hidden = false;
          }
        });
      }).catch(function () { form.submit(); });
    });
  }

  var root = document.querySelector("[data-progress-root]");
  if (root) followProgress(root);
  var form = document.querySelector("form[data-another-card]");
  if (form) anotherCard(form);
})();
