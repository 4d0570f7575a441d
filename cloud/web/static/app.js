// Switchyard screens: small progressive enhancement, written for this app (no third-party code).
// Without JavaScript every page still works; with it, the payment timeline follows the
// server's event stream (no polling), and Razorpay Checkout opens when that provider is used.
"use strict";
(function () {
  function followTimeline(list) {
    if (list.dataset.finished === "true" || !window.EventSource) {
      return;
    }
    var source = new EventSource(list.dataset.events);
    source.addEventListener("timeline", function (event) {
      var view = JSON.parse(event.data);
      view.steps.forEach(function (step) {
        var item = list.querySelector('[data-step="' + step.step + '"]');
        if (item) {
          item.className = step.done ? "done" : "todo";
          item.querySelector(".label").textContent = step.label;
          item.querySelector(".elapsed").textContent = step.elapsed;
        }
      });
      var outcome = document.getElementById("outcome");
      outcome.textContent = view.message;
      outcome.className = "outcome-" + view.outcome;
      if (view.finished) {
        source.close();
        list.dataset.finished = "true";
      }
    });
  }

  function openRazorpay(box) {
    var form = document.getElementById("razorpay-callback");
    var checkout = new window.Razorpay({
      key: box.dataset.key,
      order_id: box.dataset.order,
      amount: Number(box.dataset.amount),
      currency: "INR",
      notes: { account_id: box.dataset.account },
      handler: function (answer) {
        form.elements.razorpay_payment_id.value = answer.razorpay_payment_id;
        form.elements.razorpay_signature.value = answer.razorpay_signature;
        form.submit();
      },
    });
    checkout.open();
  }

  function followFeed(table) {
    if (!window.EventSource) {
      return;
    }
    var body = table.querySelector("tbody");
    var source = new EventSource(table.dataset.events);
    source.addEventListener("command", function (event) {
      var row = JSON.parse(event.data);
      var tr = document.getElementById("cmd-" + row.command_id) || document.createElement("tr");
      tr.id = "cmd-" + row.command_id;
      tr.textContent = "";
      ["updated_at", "meter_id", "action", "state", "origin"].forEach(function (key) {
        var td = document.createElement("td");
        td.textContent = row[key];
        tr.appendChild(td);
      });
      tr.dataset.state = row.state;
      body.insertBefore(tr, body.firstChild);
      while (body.rows.length > 200) {
        body.deleteRow(body.rows.length - 1);
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var list = document.getElementById("timeline");
    if (list) {
      followTimeline(list);
    }
    var razorpay = document.getElementById("razorpay");
    var open = document.getElementById("razorpay-open");
    if (razorpay && open) {
      open.addEventListener("click", function () {
        openRazorpay(razorpay);
      });
    }
    var feed = document.getElementById("command-feed");
    if (feed) {
      followFeed(feed);
    }
  });
})();
