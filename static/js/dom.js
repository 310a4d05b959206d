// Tiny DOM helpers. Strings always become text nodes: no HTML is ever parsed from data.

const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'multiple', 'type']);

/** h('button', {class: 'btn', onclick: fn, 'aria-label': 'Play'}, 'text', childNode, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (PROPS.has(key)) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/**
 * One part of a row's line of details after its first ("· 131 KB"): the separator and the text
 * together, so that on a narrow row the part drops out whole instead of being cut.
 */
export function metaPart(child) {
  return h('span', { class: 'meta-part' }, h('span', { class: 'sep', 'aria-hidden': 'true' }, '·'), child);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// Icons: 24x24 outline paths (filled where noted), drawn with currentColor.
const ICONS = {
  play: { d: 'M8 5.6v12.8a1 1 0 0 0 1.5.86l10.4-6.4a1 1 0 0 0 0-1.72L9.5 4.74A1 1 0 0 0 8 5.6z', fill: true },
  pause: { d: 'M7 5h3.2v14H7zM13.8 5H17v14h-3.2z', fill: true },
  stop: { d: 'M7 7h10v10H7z', fill: true },
  dot: { d: 'M12 5a7 7 0 1 0 0 14 7 7 0 0 0 0-14z', fill: true },
  download: { d: 'M12 4v11m0 0-4.5-4.5M12 15l4.5-4.5M5 19.5h14' },
  rename: { d: 'M4 20h4L19.5 8.5a2.1 2.1 0 0 0-3-3L5 17v3zM14.5 7.5l3 3' },
  trash: { d: 'M4 7h16M10 11v6M14 11v6M6 7l1 12.2A1 1 0 0 0 8 20h8a1 1 0 0 0 1-.8L18 7M9 7V4.5h6V7' },
  mic: { d: 'M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3zM5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21' },
  upload: { d: 'M12 16V4m0 0L7.5 8.5M12 4l4.5 4.5M5 20h14' },
  search: { d: 'M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13zM20 20l-4.8-4.8' },
  close: { d: 'M6 6l12 12M18 6 6 18' },
  restore: { d: 'M9 14 4 9l5-5M4 9h10.5a5.5 5.5 0 0 1 0 11H11' },
  wave: { d: 'M4 10v4M8 6.5v11M12 3.5v17M16 7.5v9M20 10.5v3' },
  user: { d: 'M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8zM4.5 20.5a7.5 7.5 0 0 1 15 0' },
  back: { d: 'M4.5 12a7.5 7.5 0 1 0 2.2-5.3M4.5 3.5v3.7h3.7' },
  forward: { d: 'M19.5 12a7.5 7.5 0 1 1-2.2-5.3M19.5 3.5v3.7h-3.7' },
  retry: { d: 'M19.5 12a7.5 7.5 0 1 1-2.2-5.3M19.5 3.5v3.7h-3.7' },
  phone: { d: 'M8 3h8a1 1 0 0 1 1 1v16a1 1 0 0 1-1 1H8a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1zM11 18h2' },
  check: { d: 'M5 12.5l4.5 4.5L19 7.5' },
  share: { d: 'M12 14.5V3.5m0 0L8 7.5m4-4 4 4M7.5 10.5H6a1 1 0 0 0-1 1V20a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-8.5a1 1 0 0 0-1-1h-1.5' },
  link: { d: 'M10 14a4 4 0 0 0 5.66 0l3-3a4 4 0 0 0-5.66-5.66l-1 1M14 10a4 4 0 0 0-5.66 0l-3 3a4 4 0 0 0 5.66 5.66l1-1' },
  copy: { d: 'M9 9h10v11H9zM15 9V4H5v11h4' },
  laptop: { d: 'M5 5.5h14v10H5zM2.5 19h19' },
  transcript: { d: 'M4.5 6h15M4.5 10.5h15M4.5 15h9.5M4.5 19.5h6.5' },
  bookmark: { d: 'M7 3.5h10a1 1 0 0 1 1 1v16l-6-4.2-6 4.2v-16a1 1 0 0 1 1-1z' },
};

const SVG = 'http://www.w3.org/2000/svg';

export function icon(name, extraClass) {
  const def = ICONS[name];
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', extraClass ? `icon ${extraClass}` : 'icon');
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', def.d);
  if (def.fill) {
    path.setAttribute('fill', 'currentColor');
  } else {
    path.setAttribute('fill', 'none');
    path.setAttribute('stroke', 'currentColor');
    path.setAttribute('stroke-width', '2');
    path.setAttribute('stroke-linecap', 'round');
    path.setAttribute('stroke-linejoin', 'round');
  }
  svg.append(path);
  return svg;
}

/** Swaps the icon inside a button. */
export function setIcon(button, name) {
  const old = button.querySelector('svg.icon');
  const fresh = icon(name);
  if (old) old.replaceWith(fresh);
  else button.prepend(fresh);
}
