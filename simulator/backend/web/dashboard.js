// The reference backend's dashboard: one page per view, each loading its data from the
// JSON API, as a real product's single-purpose pages would. Kept small on purpose: it
// exists so a browser session can be recorded (HAR) and replayed by barnstorm's users.
"use strict";

const main = document.getElementById("main");
const token = () => sessionStorage.getItem("token");

async function api(method, url, body) {
  const headers = { "content-type": "application/json" };
  if (token()) headers.authorization = "Bearer " + token();
  const response = await fetch(url, { method, headers, body: body && JSON.stringify(body) });
  if (response.status === 401) {
    location.href = "/dashboard/login";
    throw new Error("login required");
  }
  return response.json();
}

const esc = (text) => String(text).replace(/[&<>"]/g, (c) => "&#" + c.charCodeAt(0) + ";");
const link = (href, text) => `<a href="${esc(href)}">${esc(text)}</a>`;

function chart(points, key) {
  if (!points.length) return "<p>no data in this window</p>";
  const values = points.map((p) => p[key]).filter((v) => v !== null && v !== undefined);
  const t0 = points[0].ts, t1 = points[points.length - 1].ts || t0 + 1;
  const lo = Math.min(...values), hi = Math.max(...values) || lo + 1;
  const path = points
    .filter((p) => p[key] !== null && p[key] !== undefined)
    .map((p, i) => `${i ? "L" : "M"}${(600 * (p.ts - t0)) / (t1 - t0 || 1)},${150 - (140 * (p[key] - lo)) / (hi - lo || 1)}`)
    .join("");
  return `<svg class="chart" width="600" height="160"><path d="${path}" fill="none" stroke="#2c6fbb"/></svg>`;
}

const views = [
  [/^\/dashboard\/login$/, async () => {
    main.innerHTML = `<form id="login"><label>User <input name="username" value="farmer"></label>
      <label>Password <input name="password" type="password"></label><button>Log in</button></form>`;
    document.getElementById("login").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = new FormData(event.target);
      const answer = await api("POST", "/api/login", Object.fromEntries(form));
      sessionStorage.setItem("token", answer.token);
      location.href = "/dashboard/farms";
    });
  }],
  [/^\/dashboard\/farms$/, async () => {
    const farms = await api("GET", "/api/farms");
    main.innerHTML = "<h1>Farms</h1><ul>" +
      farms.map((f) => `<li>${link("/dashboard/farms/" + f.farm_id, f.name)} (${f.devices} devices)</li>`).join("") + "</ul>";
  }],
  [/^\/dashboard\/farms\/([^/]+)$/, async (farmId) => {
    const farm = await api("GET", "/api/farms/" + encodeURIComponent(farmId));
    const alerts = await api("GET", "/api/alerts");
    const open = alerts.filter((a) => a.farm_id === farmId && !a.acknowledged).length;
    main.innerHTML = `<h1>${esc(farmId)}</h1><p>${open} open alerts</p><ul>` +
      farm.rooms.map((r) => `<li class="health-${esc(r.health)}">${link(`/dashboard/farms/${farmId}/rooms/${r.room_id}`, r.room_id)}</li>`).join("") + "</ul>";
  }],
  [/^\/dashboard\/farms\/([^/]+)\/rooms\/([^/]+)$/, async (farmId, roomId) => {
    await api("GET", "/api/farms/" + encodeURIComponent(farmId));
    const to = Math.floor(Date.now() / 1000), from = to - 7 * 86400;
    const room = await api("GET", `/api/farms/${encodeURIComponent(farmId)}/rooms/${encodeURIComponent(roomId)}?from=${from}&to=${to}`);
    const devices = [...new Set(room.coughs.concat(room.climate).map((p) => p.device_id))].sort();
    main.innerHTML = `<h1>${esc(roomId)}</h1><h2>Coughs, 7 days</h2>${chart(room.coughs, "coughs")}
      <h2>Temperature</h2>${chart(room.climate, "temp_c")}<ul>` +
      devices.map((d) => `<li>${link("/dashboard/devices/" + d, d)}</li>`).join("") + "</ul>";
  }],
  [/^\/dashboard\/devices\/([^/]+)$/, async (deviceId) => {
    const device = await api("GET", "/api/devices/" + encodeURIComponent(deviceId));
    main.innerHTML = `<h1>${esc(deviceId)}</h1><p>${device.messages} messages</p><pre>${esc(JSON.stringify(device.last, null, 2))}</pre>`;
  }],
  [/^\/dashboard\/alerts$/, async () => {
    const alerts = await api("GET", "/api/alerts");
    main.innerHTML = "<h1>Alerts</h1><ul>" + alerts.map((a) =>
      `<li>${esc(a.kind)} ${esc(a.device_id)} ${a.acknowledged ? "(acknowledged)" : `<button data-id="${a.id}">Acknowledge</button>`}</li>`).join("") + "</ul>";
    main.querySelectorAll("button[data-id]").forEach((button) => button.addEventListener("click", async () => {
      await api("POST", `/api/alerts/${button.dataset.id}/ack`);
      button.replaceWith("(acknowledged)");
    }));
  }],
];

for (const [pattern, show] of views) {
  const match = location.pathname.match(pattern);
  if (match) {
    if (!token() && !pattern.test("/dashboard/login")) location.href = "/dashboard/login";
    else show(...match.slice(1).map(decodeURIComponent));
    break;
  }
}
