/* Card payment of an invoice (templates/client/payment.html), with Stripe.js loaded from
 * STRIPE_JS_URL. No inline script: the page passes the keys, URLs and French messages through the
 * data- attributes of #card-payment.
 *
 * On Stripe, Stripe.js confirms the PaymentIntent with the card Element (confirmCardPayment).
 * localstripe's Stripe.js cannot (its confirmCardPayment only runs 3-D Secure), so when the page
 * carries a SetupIntent (data-setup-secret) the card is collected with confirmCardSetup, the
 * server confirms the PaymentIntent with it, and confirmCardPayment handles 3-D Secure if needed.
 * Either way the browser then goes to the return page, which asks Stripe and records the payment.
 */
(function () {
  "use strict";

  var form = document.getElementById("card-payment");
  if (!form) {
    return;
  }
  var data = form.dataset;
  var button = document.getElementById("card-submit");
  var message = document.getElementById("card-message");

  function show(text, kind) {
    message.textContent = text || "";
    message.className = "flash flash-" + (kind || "error");
    message.hidden = !text;
  }

  if (typeof window.Stripe !== "function") {
    show(data.msgUnavailable);
    return;
  }

  var stripe, card;
  try {
    stripe = window.Stripe(data.publishableKey, {locale: data.locale});
    card = stripe.elements({locale: data.locale}).create("card", {hidePostalCode: true});
    card.mount("#card-element");
  } catch (error) {
    show(data.msgUnavailable);
    return;
  }
  button.disabled = false;

  function messageFor(error) {
    var code = (error && error.code) || "";
    if (/authentication_failure$/.test(code)) {
      return data.msgAuthentication;
    }
    if (/^(incomplete_|invalid_|incorrect_)/.test(code) || code === "expired_card"
        || (error && error.type === "validation_error")) {
      return data.msgIncomplete;
    }
    if (code === "card_declined" || (error && error.type === "card_error")) {
      return data.msgDeclined;
    }
    return data.msgError;
  }

  function goToResult(intentId) {
    var url = new URL(data.returnUrl, window.location.href);
    url.searchParams.set("payment_intent", intentId);
    window.location.assign(url.toString());
  }

  async function confirmInBrowser() {
    var result = await stripe.confirmCardPayment(data.clientSecret, {payment_method: {card: card}});
    if (result.error) {
      return {error: result.error};
    }
    return {intentId: result.paymentIntent.id};
  }

  async function confirmOnServer() {
    var setup = await stripe.confirmCardSetup(data.setupSecret, {payment_method: {card: card}});
    if (setup.error) {
      return {error: setup.error};
    }
    var response = await fetch(data.confirmUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json",
                "X-CSRFToken": data.csrfToken},
      body: JSON.stringify({setup_intent: setup.setupIntent.id})
    });
    var body = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      return {message: body.error || data.msgError};
    }
    if (body.status === "requires_action") {
      var action = await stripe.confirmCardPayment(body.client_secret);
      if (action.error) {
        return {error: action.error};
      }
    }
    return {intentId: body.payment_intent};
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    if (button.disabled) {
      return;
    }
    button.disabled = true;
    show(data.msgProcessing, "info");
    var outcome;
    try {
      outcome = data.setupSecret ? await confirmOnServer() : await confirmInBrowser();
    } catch (error) {
      outcome = {message: data.msgError};
    }
    if (outcome.intentId) {
      goToResult(outcome.intentId);
      return;
    }
    show(outcome.message || messageFor(outcome.error));
    button.disabled = false;
  });
}());
