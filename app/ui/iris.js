() => {
  // Runs once when the page loads. Images dropped anywhere on the chat go to the input box, as if
  // dropped on it; on phones the conversation list starts folded away so the chat is what one sees.
  const inChat = (e) => e.target && e.target.closest && e.target.closest('#iris-chat');
  document.addEventListener('dragover', (e) => { if (inChat(e)) e.preventDefault(); });
  document.addEventListener('drop', (e) => {
    if (!inChat(e) || !e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    const input = document.querySelector('#iris-input input[type=file]');
    if (!input) return;
    const dt = new DataTransfer();
    for (const f of e.dataTransfer.files) dt.items.add(f);
    input.files = dt.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
  });
  if (window.innerWidth < 768) {
    setTimeout(() => {
      const sb = document.querySelector('#iris-sidebar');
      if (sb && sb.classList.contains('open')) sb.querySelector('button.toggle-button')?.click();
    }, 300);
  }
}
