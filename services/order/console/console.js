// The Larder console: a merchant's live view and a customer's order page, on the public API
// only. Live parts are Server-Sent Events read with fetch (an EventSource cannot send the
// Authorization header): GET /merchant/events for the merchant, GET /order/{id}/events for a
// customer's order. No framework and no build step: this file is served as it is.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const ORDERS_SHOWN = 50;
const RECONNECT_MS = [500, 1000, 2000, 5000];

// ---------------------------------------------------------------------------------------------
// The API

class ApiError extends Error {
  constructor(status, problem) {
    super(problemText(status, problem));
    this.status = status;
  }
}

function problemText(status, problem) {
  if (!problem) return `HTTP ${status}`;
  const fields = (problem.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
  return [problem.detail || problem.title || `HTTP ${status}`, fields].filter(Boolean).join(" — ");
}

async function api(method, path, { token, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

// Reads a text/event-stream response and calls onEvent(type, data, id) per event. Resolves
// when the stream ends; rejects with an ApiError for an error status.
async function readEvents(path, token, { onOpen, onEvent, lastEventId, signal }) {
  const headers = { authorization: `Bearer ${token}`, accept: "text/event-stream" };
  if (lastEventId) headers["last-event-id"] = lastEventId;
  const response = await fetch(path, { headers, signal });
  if (response.status === 204) return;
  if (!response.ok) {
    const text = await response.text();
    throw new ApiError(response.status, text ? JSON.parse(text) : null);
  }
  onOpen?.();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let type = "message", id = null;
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // keep-alive comment
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const content = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") type = content;
        else if (field === "data") data.push(content);
        else if (field === "id") id = content;
      }
      if (data.length) onEvent(type, JSON.parse(data.join("\n")), id);
    }
  }
}

function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function showError(target, error) {
  target.textContent = error ? error.message || String(error) : "";
}

function money(cents, currency) {
  return `${(cents / 100).toFixed(2)} ${currency}`;
}

function amount(value, unit) {
  return unit === "g" && Math.abs(value) >= 1000 ? `${(value / 1000).toLocaleString()} kg`
    : unit === "ml" && Math.abs(value) >= 1000 ? `${(value / 1000).toLocaleString()} l`
    : `${value.toLocaleString()} ${unit}`;
}

function time(at) {
  return at ? new Date(at).toLocaleTimeString() : "";
}

function pill(element, value) {
  element.textContent = value;
  element.dataset.value = value;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

// ---------------------------------------------------------------------------------------------
// Tabs and sessions

const sessions = {
  get: (role) => sessionStorage.getItem(`larder.${role}`),
  set: (role, value) => (value ? sessionStorage.setItem(`larder.${role}`, value) : sessionStorage.removeItem(`larder.${role}`)),
};

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => showTab(tab.dataset.tab));
}

function showTab(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== name;
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
}

async function logIn(email, password) {
  const token = await api("POST", "/auth/login", { body: { email, password } });
  return token.access_token;
}

// ---------------------------------------------------------------------------------------------
// Merchant

const merchant = {
  token: null,
  email: null,
  feed: null, // AbortController of the live feed
  orders: new Map(), // id -> row
};

$("#merchant-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget, error = $(".error", form);
  showError(error, null);
  const { email, password } = formData(form);
  try {
    await startMerchant(await logIn(email, password), email);
  } catch (e) {
    showError(error, e);
  }
});

$("#merchant-signup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget, error = $(".error", form);
  showError(error, null);
  const { operator_token, ...body } = formData(form);
  const headers = operator_token ? { "x-operator-token": operator_token } : {};
  try {
    await api("POST", "/auth/merchants", { body, headers });
    await startMerchant(await logIn(body.email, body.password), body.email);
  } catch (e) {
    showError(error, e);
  }
});

$("#merchant-logout").addEventListener("click", () => stopMerchant());

$("#seed").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  showError($("#merchant-error"), null);
  try {
    await api("POST", "/order/seed", { token: merchant.token });
  } catch (e) {
    showError($("#merchant-error"), e);
  } finally {
    button.disabled = false;
  }
});

async function startMerchant(token, email) {
  merchant.token = token;
  merchant.email = email;
  sessions.set("merchant", JSON.stringify({ token, email }));
  $("#merchant-who").textContent = email;
  $("#merchant-signed-out").hidden = true;
  $("#merchant-signed-in").hidden = false;
  followFeed();
}

function stopMerchant(reason) {
  merchant.feed?.abort();
  merchant.feed = null;
  merchant.token = null;
  merchant.orders.clear();
  sessions.set("merchant", null);
  $("#orders tbody").replaceChildren();
  $("#alerts tbody").replaceChildren();
  $("#dead-letters tbody").replaceChildren();
  $("#ingredients").replaceChildren();
  $("#merchant-signed-in").hidden = true;
  $("#merchant-signed-out").hidden = false;
  showError($(".error", $("#merchant-login")), reason || null);
}

function feedState(state) {
  const element = $("#feed-state");
  element.textContent = state;
  element.dataset.state = state;
}

// Follows GET /merchant/events until logged out, reconnecting when the stream ends.
async function followFeed() {
  merchant.feed?.abort();
  const control = new AbortController();
  merchant.feed = control;
  for (let attempt = 0; !control.signal.aborted; attempt++) {
    feedState("connecting");
    try {
      await readEvents("/merchant/events", merchant.token, {
        signal: control.signal,
        onOpen: () => {
          attempt = 0;
          feedState("live");
        },
        onEvent: (type, data) => onFeedEvent(type, data),
      });
    } catch (e) {
      if (control.signal.aborted) return;
      if (e.status === 401 || e.status === 403) {
        stopMerchant(e.status === 403 ? "This account is not a merchant." : "Please log in again.");
        return;
      }
      showError($("#merchant-error"), e);
    }
    if (control.signal.aborted) return;
    feedState("offline");
    await sleep(RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)]);
  }
}

function onFeedEvent(type, data) {
  switch (type) {
    case "orders": return renderOrders(data.items);
    case "order": return moveOrder(data);
    case "ingredients": return renderIngredients(data.items);
    case "alerts": return renderAlerts(data.items);
    case "dead_letters": return renderDeadLetters(data.items);
  }
}

function renderOrders(items) {
  merchant.orders.clear();
  $("#orders tbody").replaceChildren();
  for (const order of [...items].reverse()) addOrderRow(order, false);
}

function addOrderRow(order, fresh) {
  const body = $("#orders tbody");
  const row = body.insertRow(0);
  row.dataset.orderId = order.id;
  if (fresh) row.className = "fresh";
  const id = cell(row, "");
  const code = document.createElement("code");
  code.textContent = order.id.slice(-12);
  code.title = order.id;
  id.append(code);
  const status = document.createElement("span");
  status.className = "pill";
  cell(row, "").append(status);
  cell(row, order.total_cents != null ? money(order.total_cents, order.currency) : "…", "total");
  cell(row, time(order.created_at), "placed");
  merchant.orders.set(order.id, row);
  setOrderStatus(row, order.status);
  while (body.rows.length > ORDERS_SHOWN) {
    const last = body.rows[body.rows.length - 1];
    merchant.orders.delete(last.dataset.orderId);
    last.remove();
  }
  return row;
}

function setOrderStatus(row, status) {
  row.dataset.status = status;
  pill($(".pill", row), status);
}

async function moveOrder(moved) {
  let row = merchant.orders.get(moved.order_id);
  if (row) {
    setOrderStatus(row, moved.status);
    row.classList.remove("fresh");
    void row.offsetWidth; // restart the highlight
    row.classList.add("fresh");
    return;
  }
  row = addOrderRow({ id: moved.order_id, status: moved.status, created_at: moved.at }, true);
  try {
    const order = await api("GET", `/order/${moved.order_id}`, { token: merchant.token });
    $(".total", row).textContent = money(order.total_cents, order.currency);
    $(".placed", row).textContent = time(order.created_at);
  } catch {
    // The row stays as it is; the next snapshot fills it.
  }
}

function renderIngredients(items) {
  const container = $("#ingredients");
  if (!items.length) {
    container.innerHTML = '<p class="empty">No ingredients yet: seed the catalogue.</p>';
    return;
  }
  $(".empty", container)?.remove();
  const seen = new Set();
  for (const ingredient of items) {
    seen.add(String(ingredient.id));
    let card = container.querySelector(`[data-ingredient-id="${ingredient.id}"]`);
    if (!card) {
      card = $("#ingredient-card").content.firstElementChild.cloneNode(true);
      card.dataset.ingredientId = ingredient.id;
      $(".restock", card).addEventListener("submit", (event) => restock(event, card));
      container.append(card);
    }
    const percent = Math.max(0, Math.min(100, ingredient.percent));
    card.dataset.ingredient = ingredient.name;
    card.dataset.percent = ingredient.percent;
    card.dataset.alert = ingredient.alert;
    card.dataset.low = String(ingredient.percent < 50);
    $(".name", card).textContent = ingredient.name;
    pill($(".alert-state", card), ingredient.alert);
    $(".fill", card).style.width = `${percent}%`;
    $(".gauge", card).setAttribute("aria-valuenow", ingredient.percent);
    $(".level", card).textContent =
      `${amount(ingredient.stock, ingredient.unit)} of ${amount(ingredient.reference_level, ingredient.unit)} · ${ingredient.percent} %`;
    $("input[name=amount]", card).placeholder = ingredient.unit;
  }
  for (const card of container.querySelectorAll("[data-ingredient-id]")) {
    if (!seen.has(card.dataset.ingredientId)) card.remove();
  }
}

async function restock(event, card) {
  event.preventDefault();
  const form = event.currentTarget;
  const value = Number(form.elements.amount.value);
  showError($("#merchant-error"), null);
  try {
    await api("POST", `/ingredients/${card.dataset.ingredientId}/restock`, {
      token: merchant.token,
      body: { amount: value },
    });
    form.reset();
  } catch (e) {
    showError($("#merchant-error"), e);
  }
}

function renderAlerts(items) {
  const body = $("#alerts tbody");
  body.replaceChildren();
  for (const alert of items) {
    const row = body.insertRow();
    row.dataset.alertIngredient = alert.ingredient;
    row.dataset.emailStatus = alert.email_status;
    cell(row, alert.ingredient);
    cell(row, `${amount(alert.level, alert.unit)} · ${alert.percent} %`);
    cell(row, alert.recipient);
    const status = document.createElement("span");
    status.className = "pill";
    pill(status, alert.email_status);
    const statusCell = cell(row, "");
    statusCell.append(status);
    if (alert.last_error && alert.email_status !== "sent") {
      const why = document.createElement("div");
      why.className = "note";
      why.textContent = `${alert.attempts} attempt(s): ${alert.last_error}`;
      statusCell.append(why);
    }
    cell(row, time(alert.raised_at));
  }
  if (!items.length) cell(body.insertRow(), "No alert yet.", "empty").colSpan = 5;
}

function renderDeadLetters(items) {
  const body = $("#dead-letters tbody");
  body.replaceChildren();
  for (const letter of [...items].reverse()) {
    const row = body.insertRow();
    row.dataset.sequence = letter.sequence;
    cell(row, String(letter.sequence));
    cell(row, letter.consumer);
    const reason = cell(row, letter.reason);
    reason.title = letter.payload_preview;
    cell(row, time(letter.stored_at));
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = "Replay";
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const replayed = await api("POST", `/dead-letters/${letter.sequence}/replay`, { token: merchant.token });
        button.textContent = `Replayed (#${replayed.stream_sequence})`;
      } catch (e) {
        button.disabled = false;
        showError($("#merchant-error"), e);
      }
    });
    cell(row, "").append(button);
  }
  if (!items.length) cell(body.insertRow(), "None.", "empty").colSpan = 5;
}

// ---------------------------------------------------------------------------------------------
// Customer

const customer = { token: null, follows: new Set() };

$("#customer-login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget, error = $(".error", form);
  showError(error, null);
  const { email, password } = formData(form);
  try {
    await startCustomer(await logIn(email, password), email);
  } catch (e) {
    showError(error, e);
  }
});

$("#customer-register").addEventListener("click", async () => {
  const form = $("#customer-login"), error = $(".error", form);
  showError(error, null);
  if (!form.reportValidity()) return;
  const { email, password } = formData(form);
  try {
    await api("POST", "/auth/register", { body: { email, password } });
    await startCustomer(await logIn(email, password), email);
  } catch (e) {
    showError(error, e);
  }
});

$("#customer-logout").addEventListener("click", () => {
  for (const control of customer.follows) control.abort();
  customer.follows.clear();
  customer.token = null;
  sessions.set("customer", null);
  $("#my-orders").replaceChildren();
  $("#customer-signed-in").hidden = true;
  $("#customer-signed-out").hidden = false;
});

async function startCustomer(token, email) {
  customer.token = token;
  sessions.set("customer", JSON.stringify({ token, email }));
  $("#customer-who").textContent = email;
  $("#customer-signed-out").hidden = true;
  $("#customer-signed-in").hidden = false;
  await loadProducts();
}

async function loadProducts() {
  const container = $("#products");
  let offers;
  try {
    offers = await api("GET", "/products");
  } catch (e) {
    showError($("#customer-error"), e);
    return;
  }
  if (!offers.length) return;
  container.replaceChildren();
  for (const offer of offers) {
    const card = $("#product-card").content.firstElementChild.cloneNode(true);
    card.dataset.productId = offer.id;
    card.dataset.product = offer.name;
    $(".name", card).textContent = `${offer.name} · ${offer.merchant}`;
    $(".price", card).textContent = money(offer.price_cents, offer.currency);
    card.addEventListener("submit", (event) => placeOrder(event, offer));
    container.append(card);
  }
}

async function placeOrder(event, offer) {
  event.preventDefault();
  const form = event.currentTarget;
  const quantity = Number(form.elements.quantity.value);
  showError($("#customer-error"), null);
  try {
    const order = await api("POST", "/order", {
      token: customer.token,
      body: { products: [{ product_id: offer.id, quantity }] },
      headers: { "idempotency-key": randomKey() },
    });
    followOrder(order, `${quantity} × ${offer.name}`);
  } catch (e) {
    showError($("#customer-error"), e);
  }
}

// Shows the order and follows GET /order/{id}/events until it is final.
async function followOrder(order, title) {
  const card = $("#order-card").content.firstElementChild.cloneNode(true);
  card.dataset.orderId = order.id;
  $(".title", card).textContent = `${title} · ${money(order.total_cents, order.currency)}`;
  $("#my-orders").prepend(card);
  const cancel = $(".cancel", card);
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api("POST", `/order/${order.id}/cancel`, { token: customer.token });
    } catch (e) {
      $(".note", card).textContent = e.message;
    }
  });
  const control = new AbortController();
  customer.follows.add(control);
  let lastEventId = null, final = false;
  for (let attempt = 0; !final && !control.signal.aborted; attempt++) {
    try {
      await readEvents(`/order/${order.id}/events`, customer.token, {
        signal: control.signal,
        lastEventId,
        onOpen: () => (attempt = 0),
        onEvent: (type, change, id) => {
          lastEventId = id;
          showChange(card, change);
          final = change.final;
        },
      });
      if (lastEventId === null) final = true; // 204: nothing more will come
    } catch (e) {
      if (control.signal.aborted) break;
      $(".note", card).textContent = e.message;
      if (e.status && e.status < 500) break;
    }
    if (!final) await sleep(RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)]);
  }
  customer.follows.delete(control);
}

function showChange(card, change) {
  card.dataset.status = change.status;
  pill($(".status", card), change.status);
  const item = document.createElement("li");
  item.textContent = `${time(change.at)} ${change.status}${change.note ? ` — ${change.note}` : ""}`;
  $(".timeline", card).append(item);
  $(".cancel", card).hidden = !["pending", "confirmed"].includes(change.status);
}

// ---------------------------------------------------------------------------------------------
// Start: back where the tab was, with the sessions it had.

showTab(location.hash === "#customer" ? "customer" : "merchant");
for (const [role, start] of [["merchant", startMerchant], ["customer", startCustomer]]) {
  const saved = sessions.get(role);
  if (saved) {
    const { token, email } = JSON.parse(saved);
    start(token, email);
  }
}
