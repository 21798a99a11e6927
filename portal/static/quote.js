/* The decision form of the quote page (templates/client/quote.html). Valider without the CGV box
 * ticked shows the message next to the box and moves the focus to it, before any request; the
 * server checks it again (a browser without this script gets the same message from it).
 * No inline script or handler: the CSP allows this site's files only.
 */
(function () {
  "use strict";

  var form = document.getElementById("decision-form");
  var box = document.getElementById("accept_terms");
  var accept = document.getElementById("decision-accept");
  var error = document.getElementById("accept_terms-error");
  if (!form || !box || !accept || !error) {
    return;
  }

  function showMissing(missing) {
    error.hidden = !missing;
    if (missing) {
      box.setAttribute("aria-invalid", "true");
      box.setAttribute("aria-describedby", error.id);
    } else {
      box.removeAttribute("aria-invalid");
      box.removeAttribute("aria-describedby");
    }
  }

  // A click covers the mouse, the keyboard on the button, and Enter in a field (the browser
  // clicks the form's first submit button, Valider); Refuser needs no CGV.
  accept.addEventListener("click", function (event) {
    if (!box.checked) {
      event.preventDefault();
      showMissing(true);
      box.focus();
    }
  });

  box.addEventListener("change", function () {
    if (box.checked) {
      showMissing(false);
    }
  });
})();
