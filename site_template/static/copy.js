// Progressive enhancement: "Copy" buttons for the fediverse handle and post addresses.
// Pages read fine without it; the buttons stay hidden when scripts do not run.
document.querySelectorAll("button.copy[data-copy]").forEach((button) => {
  if (!navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(button.dataset.copy);
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    } catch (err) {
      button.textContent = "Select and copy";
    }
  });
});
