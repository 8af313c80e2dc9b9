() => {
  // Runs once when the page loads. Images dropped anywhere on the chat go to the input box, as if
  // dropped on it; on phones the conversation list starts folded away so the chat is what one sees.
  const say = window.irisSay || ((text, fields) => text);  // the <head> script's words (app.ui.strings)
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
  // On a phone the sidebar covers the chat: it starts folded, and folds again once a chat is picked or started.
  const fold = () => {
    const sb = document.querySelector('#iris-sidebar');
    if (window.innerWidth < 768 && sb && sb.classList.contains('open')) sb.querySelector('button.toggle-button')?.click();
  };
  setTimeout(fold, 300);
  document.addEventListener('click', (e) => {
    if (e.target?.closest?.('#iris-new-chat, #iris-conversations label')) setTimeout(fold, 100);
  });

  // Keyboard shortcuts (listed in the "Keyboard shortcuts" box under the chat). Ctrl or Cmd.
  const click = (sel) => { const b = document.querySelector(sel); if (b) b.click(); };
  document.addEventListener('keydown', (e) => {
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    let done = true;
    if (mod && e.shiftKey && key === 'o') click('#iris-new-chat');
    else if (mod && e.shiftKey && key === 'x') click('#iris-stop');
    else if (mod && e.shiftKey && key === 'enter') click('#iris-regenerate');
    else if (e.shiftKey && key === 'escape') document.querySelector('#iris-input textarea')?.focus();
    else if (mod && key === '/') {
      const box = document.querySelector('#iris-keys details');
      if (box) { box.open = !box.open; box.querySelector('summary')?.focus(); }
    } else done = false;
    if (done) e.preventDefault();
  });

  // After each change to the chat: '‹ k/n ›' on messages that have other versions and the stats line under
  // each reply (both from the page map the server sends, views.page_map), and names for controls Gradio
  // leaves unnamed, so a screen reader can say what each one is.
  const version = (id, step) => {
    const box = document.querySelector('#iris-version-cmd textarea, #iris-version-cmd input');
    if (!box) return;
    box.value = id + ':' + step;
    box.dispatchEvent(new Event('input', { bubbles: true }));
    click('#iris-version-go');
  };
  // "Copy all": the conversation as text, each image as [image] (not its temporary upload address), without the
  // stats lines and version arrows.
  window.irisCopyAll = () => {
    const parts = [];
    document.querySelectorAll('#iris-chat .message-row').forEach((row) => {
      const who = say(row.classList.contains('user-row') ? 'You' : 'Assistant');
      const content = row.querySelector('.message-content');
      const text = content ? content.innerText.trim() : '';
      const strip = row.querySelectorAll('.gallery-container img').length;  // a video's frames
      const said = strip ? say('[video: {n} frames]', { n: strip }) : row.querySelector('img') ? say('[image]') : text;
      if (!said) return;
      const last = parts[parts.length - 1];
      if (last && last.who === who) last.lines.push(said); else parts.push({ who, lines: [said] });
    });
    const text = parts.map((p) => `${p.who}: ${p.lines.join('\n')}`).join('\n\n');
    navigator.clipboard?.writeText(text);
    return text;
  };
  const under = (row) => {
    let box = row.querySelector(':scope .iris-under');
    if (!box) {
      box = document.createElement('div');
      box.className = 'iris-under';
      (row.querySelector('.flex-wrap') || row).append(box);
    }
    return box;
  };
  const paint = () => {
    const holder = document.querySelector('#iris-map .iris-map');
    let map = {};
    try { map = JSON.parse(holder ? holder.dataset.map : '{}'); } catch (err) { map = {}; }
    const rows = [...document.querySelectorAll('#iris-chat .message-row')];
    document.querySelectorAll('#iris-chat .iris-under').forEach((n) => n.remove());
    for (const [j, text] of map.stats || []) {
      if (!rows[j]) continue;
      const line = document.createElement('div');
      line.className = 'iris-stats-line';
      line.textContent = text;
      under(rows[j]).append(line);
    }
    for (const [j, names] of map.frames || []) {  // a video's strip: each frame named by its time
      rows[j]?.querySelectorAll('img').forEach((img, k) => { if (names[k] && img.alt !== names[k]) img.alt = names[k]; });
    }
    for (const [j, alt] of map.alts || []) {
      rows[j]?.querySelectorAll('img').forEach((img) => { if (img.alt !== alt) img.alt = alt; });
    }
    for (const [j, id, k, n] of map.versions || []) {
      if (!rows[j]) continue;
      const nav = document.createElement('div');
      nav.className = 'iris-versions';
      nav.setAttribute('role', 'group');
      nav.setAttribute('aria-label', say('Version {k} of {n} of this message', { k, n }));
      const button = (label, text, step, off) => {
        const b = document.createElement('button');
        b.type = 'button'; b.textContent = text; b.setAttribute('aria-label', label); b.disabled = off;
        b.addEventListener('click', () => version(id, step));
        return b;
      };
      const count = document.createElement('span');
      count.textContent = `${k}/${n}`;
      nav.append(button(say('Previous version'), '‹', -1, k <= 1), count, button(say('Next version'), '›', 1, k >= n));
      under(rows[j]).prepend(nav);
    }
    // Gradio names each radio apart, so every conversation was its own Tab stop: one group, arrow keys within.
    document.querySelectorAll('#iris-conversations input[type=radio]').forEach((r) => {
      if (r.name !== 'iris-conversation') r.name = 'iris-conversation';
    });
    document.querySelectorAll('#iris-chat button[aria-label="Clear"]').forEach((b) => {
      b.setAttribute('aria-label', say('New chat')); b.title = say('New chat');  // what it does here
    });
    document.querySelectorAll('#iris-chat a[download]:not([aria-label])').forEach(
      (a) => a.setAttribute('aria-label', say('Download image')));
    document.querySelectorAll('#iris-chat button.custom-button[title="Copy all"]').forEach((b) => {
      const name = say('Copy all');  // a chatbot button shows gr.I18n's raw marker: the label is translated here
      if (b.textContent !== name) { b.textContent = name; b.setAttribute('aria-label', name); }
    });
  };
  let queued = false;
  const observer = new MutationObserver(() => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      observer.disconnect();  // painting changes the chat too
      paint();
      observer.observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true,
                                        attributeFilter: ['data-map'] });
    });
  });
  observer.observe(document.body, { childList: true, subtree: true, characterData: true, attributes: true,
                                    attributeFilter: ['data-map'] });
  paint();
}
