/** Form parts the pages share: labelled fields, selects, one-line forms, and times as the API reads them. */
import { h, type Child } from "./dom.js";

/** A one-line form whose submit runs `onSubmit` in place of a page load. */
export function inlineForm(attrs: Record<string, string>, onSubmit: () => unknown, ...children: Child[]): HTMLFormElement {
  const submit = (e: Event) => {
    e.preventDefault();
    void onSubmit();
  };
  return h("form", { class: "inline-form", ...attrs, onsubmit: submit }, ...children);
}

/** A label around its input (no id pairing needed), the label's text above it. */
export function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  return h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "hint" }, hint) : null);
}

export function select(id: string, options: [string, string][], value = ""): HTMLSelectElement {
  const el = h("select", { id, name: id }, options.map(([v, text]) => h("option", { value: v }, text)));
  el.value = value;
  return el;
}

/** A datetime-local value (the browser's time zone) as the ISO time the API wants, or undefined when empty. */
export function isoOf(value: string): string | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** An ISO time as a datetime-local input's value, in the browser's time zone. */
export function localInput(iso: string | Date): string {
  const d = typeof iso === "string" ? new Date(iso) : iso;
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
