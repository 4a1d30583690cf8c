// Links and buttons that go back or print. The Content-Security-Policy forbids
// inline handlers and javascript: links, so they say what they do in data-action.
document.addEventListener("click", function (event) {
  var target = event.target.closest ? event.target.closest("[data-action]") : null;
  if (!target) { return; }
  if (target.dataset.action === "back" && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  } else if (target.dataset.action === "print") {
    event.preventDefault();
    window.print();
  }
});
