// The account page's confirmations in place: a form marked data-confirm="<dialog id>" opens that <dialog>
// (whose own form posts again with confirm=1) instead of going to the confirmation page. Without
// JavaScript, or without <dialog>, the form posts as is and the server answers with the confirmation page.
(function () {
  "use strict";
  if (typeof HTMLDialogElement !== "function") return;
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    var dialog = document.getElementById(form.getAttribute("data-confirm"));
    if (!dialog || typeof dialog.showModal !== "function") return;
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      dialog.showModal();
    });
  });
})();
