// Forms with data-confirm="question" ask before they submit (instead of inline onsubmit handlers, which the
// console's Content-Security-Policy does not run).
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
}, true);
