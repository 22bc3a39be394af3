// The workbench's entry point: find out who we are, then route between the ideas (`#/`), an
// idea (`#/i/ID`), the document list (`#/documents`), a document and its history (`#/d/ID`,
// `#/d/ID/history`) and the workflow templates (`#/templates`, `#/templates/ID`). The models
// (wire client, stage presence, a document's sync, an idea's room) live here and in the page
// that owns them; views only render.

import { Api } from "./http.js";
import { Session } from "./session.js";
import { WireClient } from "./wire.js";
import { StagePresence } from "./stage_presence.js";
import { Notifications } from "./review_trail.js";
import { notificationBell } from "./views/notification_bell.js";
import { renderHeader } from "./views/header.js";
import { renderSignIn } from "./views/sign_in.js";
import { renderDocumentList } from "./views/document_list.js";
import { renderDocumentPage } from "./views/document_page.js";
import { renderHistory } from "./views/history.js";
import { renderDashboard } from "./views/dashboard.js";
import { renderIdeaList } from "./views/idea_list.js";
import { renderIdeaPage } from "./views/idea_page.js";
import { renderTemplateBuilder } from "./views/template_builder.js";

const header = document.getElementById("topbar");
const main = document.getElementById("main");
const api = new Api();
const session = new Session(api);
let wire = null;
let stages = null;
let bell = null;
let leavePage = () => {};
let wantsSignIn = false;

// For tests and the curious: the live models and a few timings, never used by the views.
window.coedit = { api, session };
window.coeditMetrics = { remoteApplyMs: [] };

function drawHeader() {
  renderHeader(header, { session, wire, stages, bell, onSignOut: () => {
    wantsSignIn = true;
    session.signOut();
  } });
}

function startWire() {
  wire?.stop();
  wire = new WireClient(() => session.socketUrl());
  stages = new StagePresence(wire);
  const notifications = new Notifications({ api, wire });
  bell = notificationBell(notifications);
  window.coedit.wire = wire;
  window.coedit.notifications = notifications;
  wire.on("status", drawHeader);
  wire.on("expired", () => { wantsSignIn = true; session.signOut(); });
  stages.on("change", drawHeader);
  wire.start();
}

function route() {
  leavePage();
  leavePage = () => {};
  drawHeader();
  if (!session.user || wantsSignIn) {
    document.title = "Sign in · coedit";
    renderSignIn(main, session, session.devAuth && session.anonymous && session.user
      ? { onGuest: () => { wantsSignIn = false; start(); } } : {});
    return;
  }
  if (/^#\/dashboard(\?.*)?$/.test(location.hash)) {
    document.title = "Dashboard · coedit";
    leavePage = renderDashboard(main, { api, wire, stages });
    main.focus({ preventScroll: true });
    return;
  }
  const idea = /^#\/i\/([^/]+)$/.exec(location.hash);
  const templates = /^#\/templates(?:\/([^/]+))?$/.exec(location.hash);
  const match = /^#\/d\/([^/]+)(\/history)?$/.exec(location.hash);
  if (idea) {
    leavePage = renderIdeaPage(main, { api, wire, session, ideaId: decodeURIComponent(idea[1]),
                                       onOpenDoc: (id) => { location.hash = `#/d/${id}`; } });
  } else if (templates) {
    document.title = "Workflow templates · coedit";
    leavePage = renderTemplateBuilder(main, { api, session,
      templateId: templates[1] ? decodeURIComponent(templates[1]) : null,
      onSelect: (id) => { location.hash = `#/templates/${id}`; } });
  } else if (!match && location.hash !== "#/documents") {
    document.title = "Ideas · coedit";
    leavePage = renderIdeaList(main, { api, session, onOpen: (id) => { location.hash = `#/i/${id}`; } });
  } else if (!match) {
    document.title = "Documents · coedit";
    leavePage = renderDocumentList(main, { api, session, onOpen: (id) => { location.hash = `#/d/${id}`; } });
  } else if (match[2]) {
    leavePage = renderHistory(main, { api, docId: decodeURIComponent(match[1]) });
  } else {
    leavePage = renderDocumentPage(main, { api, wire, session, stages, docId: decodeURIComponent(match[1]) });
  }
  main.focus({ preventScroll: true });
}

function start() {
  startWire();
  route();
}

session.on("change", () => {
  if (session.user && !session.anonymous) {
    wantsSignIn = false;
    start();
  } else {
    wire?.stop();
    wire = null;
    stages = null;
    bell = null;
    route();
  }
});
window.addEventListener("hashchange", route);

(async () => {
  const known = await session.refresh();
  // In dev mode a browser without a session is an anonymous viewer: offer sign-in first.
  wantsSignIn = !known || session.anonymous;
  if (wantsSignIn) route();
  else start();
})().catch((error) => {
  main.textContent = `The server could not be reached: ${error.message}`;
});
