// Asks before a destructive form is sent: buttons name their question in data-confirm.
// (A file, not inline onclick handlers, so the Content-Security-Policy can forbid
// inline script.)
document.addEventListener("submit", function (event) {
  var button = event.submitter;
  var question = button && button.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
