"""Layout and wiring of the collections panel, the upload's target collection and the chat's scope
picker (the events are CollectionsController's methods; build_app calls these helpers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from rag_core.types import VISIBILITIES
from webapp.ui.collections import REFRESH_OUTPUTS, CollectionsController
from webapp.ui.knowledge import KnowledgeController

QUIET: dict[str, Any] = {
    "api_visibility": "private",
    "concurrency_limit": None,
    "show_progress": "hidden",
}
VISIBILITY_CHOICES = [
    ("Private (only me)", VISIBILITIES[0]),
    ("Shared (me and the users named below)", VISIBILITIES[1]),
    ("Everyone", VISIBILITIES[2]),
]


@dataclass(eq=False)
class EditBoxes:
    """The picked collection's description, visibility and members, and the button that saves
    them (filled in whenever the collection picker changes)."""

    description: gr.Textbox
    visibility: gr.Radio
    members: gr.Textbox
    save_btn: gr.Button


def _sharing_boxes(prefix: str) -> tuple[gr.Textbox, gr.Radio, gr.Textbox]:
    """Description, visibility and members boxes, as creating and editing a collection ask
    them (elem ids `{prefix}-desc`, `-vis`, `-members`)."""
    description = gr.Textbox(label="Description", max_lines=3, elem_id=f"{prefix}-desc")
    visibility = gr.Radio(
        VISIBILITY_CHOICES, value="private", label="Who may see it", elem_id=f"{prefix}-vis"
    )
    members = gr.Textbox(
        label="Shared with (user names, for a shared collection)",
        max_lines=1,
        elem_id=f"{prefix}-members",
    )
    return description, visibility, members


def edit_boxes() -> EditBoxes:
    """The edit part of the panel, for the collection picked above."""
    with gr.Accordion("Edit the picked collection", open=False, elem_id="rc-coll-edit"):
        description, visibility, members = _sharing_boxes("rc-coll-edit")
        save_btn = gr.Button("Save changes", variant="primary", elem_id="rc-coll-save")
    return EditBoxes(description, visibility, members, save_btn)


@dataclass(eq=False)
class CollectionsPanel:
    """The components of the collections panel."""

    table: gr.HTML
    managed: gr.Dropdown
    new_name: gr.Textbox
    rename_btn: gr.Button
    with_docs: gr.Checkbox
    delete_btn: gr.Button
    name: gr.Textbox
    description: gr.Textbox
    visibility: gr.Radio
    members: gr.Textbox
    create_btn: gr.Button
    edit: EditBoxes
    docs: gr.Dropdown
    add_btn: gr.Button
    move_btn: gr.Button
    status: gr.HTML


def collections_panel() -> CollectionsPanel:
    """The collections table, and folded under it the tools: rename, delete and edit the
    picked one; create one; file documents."""
    gr.HTML('<div class="rc-side-title">Collections</div>', elem_classes="rc-plain")
    table = gr.HTML("", label="Collections", elem_id="rc-collections")
    # the tools fold away: the upload below is what a first visit is for
    with gr.Accordion("Manage collections", open=False, elem_id="rc-coll-manage"):
        with gr.Row(equal_height=True, elem_id="rc-coll-tools"):
            managed = gr.Dropdown(
                choices=[], value=None, label="Collection", scale=3, elem_id="rc-coll-pick"
            )
            new_name = gr.Textbox(
                label="New name", max_lines=1, scale=3, elem_id="rc-coll-new-name"
            )
            rename_btn = gr.Button("Rename", scale=1, elem_id="rc-coll-rename")
        with gr.Row(equal_height=True):
            with_docs = gr.Checkbox(
                label="Also delete its documents found in no other collection",
                value=False,
                scale=4,
                elem_id="rc-coll-with-docs",
            )
            delete_btn = gr.Button(
                "Delete collection", variant="stop", scale=1, elem_id="rc-coll-delete"
            )
        with gr.Row(equal_height=True, elem_id="rc-coll-file"):
            docs = gr.Dropdown(
                choices=[],
                value=[],
                multiselect=True,
                label="Documents to put in the picked collection",
                scale=4,
                elem_id="rc-coll-docs",
            )
            add_btn = gr.Button("Add to it", scale=1, elem_id="rc-coll-add")
            move_btn = gr.Button("Move to it", scale=1, elem_id="rc-coll-move")
        edit = edit_boxes()
        with gr.Accordion("New collection", open=False, elem_id="rc-coll-new"):
            name = gr.Textbox(label="Name", max_lines=1, elem_id="rc-coll-name")
            description, visibility, members = _sharing_boxes("rc-coll")
            create_btn = gr.Button("Create collection", variant="primary", elem_id="rc-coll-create")
    status = gr.HTML("", elem_id="rc-coll-status", elem_classes="rc-plain")
    return CollectionsPanel(
        table,
        managed,
        new_name,
        rename_btn,
        with_docs,
        delete_btn,
        name,
        description,
        visibility,
        members,
        create_btn,
        edit,
        docs,
        add_btn,
        move_btn,
        status,
    )


def upload_target() -> gr.Dropdown:
    """The collection an upload goes into: Default (filled in on page load) until the user
    picks another; a program that leaves it out uploads into Default too."""
    return gr.Dropdown(
        choices=[],
        value=None,
        label="Add uploads to collection",
        elem_id="rc-upload-collection",
    )


def scope_picker() -> gr.Dropdown:
    """What the chat's questions search: collections and single documents (empty: all)."""
    return gr.Dropdown(
        choices=[],
        value=[],
        multiselect=True,
        label="Search in (empty: everything you may see)",
        scale=4,
        min_width=200,
        elem_id="rc-scope",
        allow_custom_value=True,  # a remembered scope may name a collection since renamed
    )


@dataclass(eq=False)
class Wiring:
    """What the collections wiring chains onto: the events after which the pickers refresh
    (`changed`: uploads, deletions, a page load) and those that open or leave a conversation."""

    panel: CollectionsPanel
    target: gr.Dropdown
    scope: gr.Dropdown
    state: gr.State
    docs_table: gr.HTML
    doc_pick: gr.Dropdown


def wire_collections(
    w: Wiring,
    ctl: CollectionsController,
    knowledge: KnowledgeController,
    changed: Sequence[Any],
    conversations: Sequence[Any],
    loaded: Sequence[Any],
) -> None:
    """The panel's buttons; every change redraws the panel, the pickers and the documents.
    `changed` events redraw the pickers, `conversations` set the scope picker to the open
    conversation's scope, `loaded` (a page load, which may reopen one) do both in turn: run side
    by side, the redraw would put back the empty picker it read."""
    p = w.panel
    refresh_in = [p.managed, w.target, p.docs, w.scope]
    refresh_out = [p.table, p.managed, w.target, p.docs, w.scope]
    assert len(refresh_out) == REFRESH_OUTPUTS
    catalog_in, catalog_out = [w.doc_pick], [w.docs_table, w.doc_pick]

    def redraw(dep: Any) -> None:
        dep.then(ctl.refresh, refresh_in, refresh_out, **QUIET).then(
            knowledge.refresh_documents, catalog_in, catalog_out, **QUIET
        )

    create_in = [p.name, p.description, p.visibility, p.members]
    redraw(
        p.create_btn.click(
            ctl.create, create_in, [p.status, p.managed, p.name, p.description], **QUIET
        )
    )
    rename_out = [p.status, p.managed, p.new_name]
    redraw(p.rename_btn.click(ctl.rename, [p.managed, p.new_name], rename_out, **QUIET))
    delete_in, delete_out = [p.managed, p.with_docs], [p.status, p.managed]
    redraw(
        p.delete_btn.click(ctl.delete, delete_in, delete_out, concurrency_id="ingest", **_private())
    )
    e = p.edit
    edit_boxes_out = [e.description, e.visibility, e.members]
    p.managed.change(ctl.edit_fields, [p.managed], edit_boxes_out, **QUIET)
    save_in = [p.managed, *edit_boxes_out]
    redraw(e.save_btn.click(ctl.save_edit, save_in, [p.status, *edit_boxes_out], **QUIET))
    redraw(p.add_btn.click(ctl.add_documents, [p.managed, p.docs], [p.status], **QUIET))
    redraw(p.move_btn.click(ctl.move_documents, [p.managed, p.docs], [p.status], **QUIET))
    for dep in changed:
        dep.then(ctl.refresh, refresh_in, refresh_out, **QUIET)
    for dep in conversations:
        dep.then(ctl.conversation_scope, [w.state], [w.scope], **QUIET)
    for dep in loaded:
        dep.then(ctl.refresh, refresh_in, refresh_out, **QUIET).then(
            ctl.conversation_scope, [w.state], [w.scope], **QUIET
        )


def _private() -> dict[str, Any]:
    """Options of a private event that waits in the knowledge base's queue."""
    return {"api_visibility": "private", "show_progress": "hidden"}
