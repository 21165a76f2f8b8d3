// callbackd console: small enhancements only; every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Buttons that ask first (data-confirm="..."): publishing, opening a round, escalating.
  document.querySelectorAll("[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      if (!window.confirm(button.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // The operator's result form: keys 1/2/3 answer the focused question and move to the next; Enter saves.
  var survey = document.querySelector("form[data-keyboard-survey]");
  if (survey) {
    var groups = Array.prototype.slice.call(survey.querySelectorAll("fieldset.question"));
    groups.forEach(function (group, index) {
      group.addEventListener("keydown", function (event) {
        if (event.target.tagName === "TEXTAREA" || event.target.type === "text") { return; }
        var choice = group.querySelector("input[type=radio][data-key='" + event.key + "']");
        if (choice) {
          event.preventDefault();
          choice.checked = true;
          var next = groups[index + 1];
          var target = next ? next.querySelector("input[type=radio]") : survey.querySelector("[data-after-questions]");
          if (target) { target.focus(); }
        }
      });
    });
  }
  // Imports (form[data-max-bytes]): a file over the server's limit is refused before it is sent, with the same
  // message the server gives (413); the server checks again either way.
  document.querySelectorAll("form[data-max-bytes]").forEach(function (form) {
    var limit = Number(form.getAttribute("data-max-bytes"));
    var input = form.querySelector("input[type=file]");
    var notice = form.querySelector("[data-too-large]");
    if (!input || !limit) { return; }
    input.addEventListener("change", function () {
      var tooLarge = input.files && input.files.length > 0 && input.files[0].size > limit;
      input.setCustomValidity(tooLarge && notice ? notice.textContent : "");
      if (notice) { notice.hidden = !tooLarge; }
    });
  });
});
