// CodeMirror 6 for SQL. Only the SQL page imports this module, so CodeMirror is in its chunk and
// never in the first load.
import { closeCompletion } from "@codemirror/autocomplete";
import { PostgreSQL, sql } from "@codemirror/lang-sql";
import { HighlightStyle, syntaxHighlighting } from "@codemirror/language";
import { setDiagnostics } from "@codemirror/lint";
import { Compartment, EditorState, Prec } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { tags as t } from "@lezer/highlight";
import { basicSetup, EditorView } from "codemirror";
import { createEffect, on, onCleanup, onMount } from "solid-js";

// Colours from the theme's CSS variables, so one style serves dark and light.
const highlight = HighlightStyle.define([
  { tag: [t.keyword, t.operatorKeyword, t.modifier], color: "var(--syn-keyword)", fontWeight: "500" },
  { tag: [t.string, t.special(t.string)], color: "var(--syn-string)" },
  { tag: [t.number, t.bool, t.null], color: "var(--syn-number)" },
  { tag: [t.comment, t.lineComment, t.blockComment], color: "var(--syn-comment)", fontStyle: "italic" },
  { tag: [t.typeName, t.standard(t.name)], color: "var(--syn-type)" },
  { tag: [t.special(t.name), t.special(t.variableName)], color: "var(--syn-ident)" },
  { tag: [t.operator, t.punctuation, t.bracket], color: "var(--muted)" },
]);

const theme = EditorView.theme({
  "&": { backgroundColor: "var(--code-bg)", color: "var(--text)" },
  ".cm-content": { caretColor: "var(--text)", fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "DejaVu Sans Mono", monospace' },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--text)" },
  "&.cm-focused .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection": { backgroundColor: "var(--selection)" },
  ".cm-gutters": { backgroundColor: "var(--panel-2)", color: "var(--faint)", borderRight: "1px solid var(--border)" },
  ".cm-activeLine": { backgroundColor: "var(--active-line)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--hover)", color: "var(--text)" },
  ".cm-tooltip": { backgroundColor: "var(--panel)", border: "1px solid var(--border-strong)", color: "var(--text)" },
  ".cm-tooltip-autocomplete > ul > li[aria-selected]": { backgroundColor: "var(--info-bg)", color: "var(--text)" },
  ".cm-matchingBracket": { backgroundColor: "var(--hover)", outline: "1px solid var(--border-strong)" },
  ".cm-searchMatch": { backgroundColor: "var(--warn-bg)" },
  ".cm-panels": { backgroundColor: "var(--panel-2)", color: "var(--text)" },
  ".cm-lintRange-error": { backgroundImage: "none", textDecoration: "underline wavy var(--danger)" },
});

export interface SqlEditorHandle {
  focus(): void;
  setValue(text: string): void;
  /** Marks the error at a 1-based character position of the query (Postgres' "position"). */
  markError(position: number, message: string): void;
  clearError(): void;
}

export function SqlEditor(props: {
  initial: string;
  onChange: (text: string) => void;
  onRun: () => void;
  schema: Record<string, string[]>;
  ref?: (handle: SqlEditorHandle) => void;
}) {
  let host!: HTMLDivElement;
  let view: EditorView | undefined;
  const language = new Compartment();
  const lang = () => sql({ dialect: PostgreSQL, schema: props.schema, defaultSchema: "public" });

  onMount(() => {
    view = new EditorView({
      parent: host,
      state: EditorState.create({
        doc: props.initial,
        extensions: [
          Prec.highest(
            keymap.of([
              {
                key: "Mod-Enter",
                run: (v) => {
                  closeCompletion(v);
                  props.onRun();
                  return true;
                },
              },
            ]),
          ),
          basicSetup,
          language.of(lang()),
          syntaxHighlighting(highlight),
          theme,
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ "aria-label": "SQL query" }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) {
              props.onChange(u.state.doc.toString());
              u.view.dispatch(setDiagnostics(u.state, []));
            }
          }),
        ],
      }),
    });
    props.ref?.({
      focus: () => view?.focus(),
      setValue: (text) => view?.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
      markError(position, message) {
        if (!view) return;
        const doc = view.state.doc;
        // Postgres counts characters from 1; the editor counts UTF-16 code units from 0.
        const from = Math.min(doc.length, Math.max(0, [...doc.toString()].slice(0, position - 1).join("").length));
        const word = /^[\w"$.]+/.exec(doc.sliceString(from, Math.min(doc.length, from + 64)))?.[0].length ?? 1;
        const to = Math.min(doc.length, from + Math.max(1, word));
        view.dispatch(setDiagnostics(view.state, [{ from, to, severity: "error", message }]), { selection: { anchor: from }, scrollIntoView: true });
      },
      clearError: () => view && view.dispatch(setDiagnostics(view.state, [])),
    });
  });
  createEffect(on(() => props.schema, () => view?.dispatch({ effects: language.reconfigure(lang()) }), { defer: true }));
  onCleanup(() => view?.destroy());

  return <div class="editor" ref={host} />;
}
