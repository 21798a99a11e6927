/* Back office behaviour, loaded as a file (no inline script): organisation search as you type,
   and indicative totals in the quote editor. The server stays the authority on both. */
(function () {
  "use strict";

  /* Flask-Admin's own templates (the list and form tabs, the pagination) still write
     `javascript:void(0)` links, which the Content-Security-Policy refuses to run (an error in the
     console on each click): they become `#` links whose click goes nowhere. */
  document.querySelectorAll('a[href^="javascript:"]').forEach(function (link) {
    link.setAttribute("href", "#");
    link.addEventListener("click", function (event) { event.preventDefault(); });
  });

  function debounce(fn, ms) {
    var timer;
    return function () {
      var args = arguments, self = this;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(self, args); }, ms);
    };
  }

  document.querySelectorAll(".js-org-search").forEach(function (input) {
    var list = document.createElement("div");
    list.className = "list-group suggestions";
    input.parentNode.appendChild(list);
    input.addEventListener("input", debounce(function () {
      var q = input.value.trim();
      list.textContent = "";
      if (q.length < 2) { return; }
      fetch(input.dataset.suggestUrl + "?q=" + encodeURIComponent(q), {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : []; })
        .then(function (results) {
          list.textContent = "";
          results.forEach(function (org) {
            var link = document.createElement("a");
            link.className = "list-group-item list-group-item-action";
            link.href = org.url;
            link.textContent = org.name + (org.siren ? " · " + org.siren : "") + (org.city ? " · " + org.city : "");
            list.appendChild(link);
          });
        });
    }, 200));
  });

  var editor = document.querySelector(".js-quote-editor");
  if (!editor) { return; }
  var catalogue = {};
  document.querySelectorAll("#product-data [data-product-id]").forEach(function (item) {
    catalogue[item.dataset.productId] = {price: parseInt(item.dataset.price, 10), vat: parseInt(item.dataset.vat, 10)};
  });

  function cents(text) {
    var compact = (text || "").replace(/[\s\u00a0\u202f€]/g, "").replace(",", ".");
    if (!/^\d+(\.\d{1,2})?$/.test(compact)) { return null; }
    return Math.round(parseFloat(compact) * 100);
  }

  function euros(value) {
    return (value / 100).toLocaleString("fr-FR", {style: "currency", currency: "EUR"});
  }

  function recompute() {
    var ht = 0, vat = 0;
    editor.querySelectorAll(".js-line").forEach(function (row) {
      var product = catalogue[row.querySelector(".js-product").value];
      var quantity = parseInt(row.querySelector(".js-quantity").value, 10) || 0;
      var price = cents(row.querySelector(".js-price").value);
      var rate = parseInt(row.querySelector(".js-vat").value, 10);
      if (price === null && product) { price = product.price; }
      if (isNaN(rate)) { rate = product ? product.vat : 2000; }
      var lineHt = price === null ? 0 : price * quantity;
      var lineVat = Math.floor((lineHt * rate + 5000) / 10000);  /* half up, as the server */
      row.querySelector(".js-line-total").textContent = lineHt ? euros(lineHt) : "";
      ht += lineHt;
      vat += lineVat;
    });
    document.getElementById("total-ht").textContent = euros(ht);
    document.getElementById("total-vat").textContent = euros(vat);
    document.getElementById("total-ttc").textContent = euros(ht + vat);
  }

  editor.addEventListener("input", recompute);
  editor.addEventListener("change", recompute);
  recompute();
}());
