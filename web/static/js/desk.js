/* The station desk (/desk): the legs of one organisation (a station, squadron or the accident
 * section), live. New legs arrive through the server-sent-event stream /api/v1/stream (resumed with
 * Last-Event-ID; polling /api/v1/stream/events when the stream cannot be held) with a banner, a
 * highlighted row, a flashing title and, once the user has allowed it, a tone (Web Audio); the
 * 90 s sign-off countdown turns red when overdue, the feedback (5 h) and closure (22 h) clocks run
 * beside it. Actions: one-click sign-off, en route / arrived, first feedback with a note, closure
 * with an outcome of the catalogue (those valid for the incident's category) and a note,
 * hand-back with a reason; the leg's timeline. Every time on screen is in `local_timezone`
 * (Beijing time). Texts through gisapp.t, user text through gisapp.esc, errors show e.message.
 * No CDN, no framework, no inline handlers (CSP). MIT-licensed as part of the project.
 */
(function () {
  'use strict';

  var root = document.getElementById('desk');
  var cfgEl = document.getElementById('desk-config');
  if (!root || !cfgEl) { return; }
  var G = window.gisapp;
  var cfg = JSON.parse(cfgEl.textContent);
  G.i18n = cfg.i18n || {};
  G.style = cfg.style || {};
  var lang = cfg.lang === 'en' ? 'en' : 'zh';
  var ORG = cfg.organisation;
  var SOUND_KEY = 'gisapp.desk.sound';
  var FIELDS_SHOWN = ['first_feedback_note', 'hand_back_reason', 'status', 'unit_id', 'unit_code', 'signed_off_at', 'en_route_at', 'arrived_at', 'first_feedback_at',
    'closed_at', 'handed_back_at', 'outcome', 'outcome_note', 'may_hand_back'];

  function t(k, params) {
    var s = G.t(k);
    if (params) { Object.keys(params).forEach(function (p) { s = s.split('{' + p + '}').join(String(params[p])); }); }
    return s;
  }
  function esc(s) { return G.esc(s); }
  function $(sel) { return root.querySelector(sel); }
  function api(method, path, body) { return G.api(method, path, body, {'X-Client': 'desk-page'}); }
  function q(extra) {
    var parts = [cfg.query, extra].filter(function (x) { return x; });
    return parts.length ? '?' + parts.join('&') : '';
  }

  var S = {
    catalogue: null, legs: {}, open: [], shown: [], tab: 'open', selected: null, sig: {}, known: null, alerts: {},
    skew: 0, es: null, poll: null, lastId: null, refreshTimer: null, sound: false, audio: null, beeps: 0, lastBeep: 0,
    map: null, marker: null, title: document.title, flash: false, timeline: {}, busy: false, fallback: false
  };

  // --- time: everything on screen in the configured zone (Beijing time), through gisapp.time ----------
  G.tz = cfg.timezone;
  function fullTime(iso) { return iso ? G.time(iso, 'full') : '—'; }
  function shortTime(iso) {
    if (!iso) { return '—'; }
    return G.time(iso).slice(0, 10) === G.time(now()).slice(0, 10) ? G.time(iso, 'hm') : G.time(iso, 'dhm');
  }
  function now() { return Date.now() + S.skew; }
  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return (h ? h + ':' + (m < 10 ? '0' : '') : '') + m + ':' + (r < 10 ? '0' : '') + r;
  }

  // --- catalogue ------------------------------------------------------------------------------------------
  function typeOf(code) {
    var ty = S.catalogue && S.catalogue.types.filter(function (x) { return x.code === code; })[0];
    return ty || null;
  }
  function typeName(code) { var ty = typeOf(code); return ty ? ty[lang] : code; }
  function outcomeName(code) {
    var o = S.catalogue && (S.catalogue.outcomes || []).filter(function (x) { return x.code === code; })[0];
    return o ? o[lang] : code;
  }
  function outcomesFor(leg) {
    var ty = typeOf(leg.type), cat = leg.category || (ty ? ty.category : null);
    return ((S.catalogue && S.catalogue.outcomes) || []).filter(function (o) {
      return o.leg !== false && (!o.categories || o.categories.indexOf(cat) >= 0);
    });
  }
  function stepsOf(leg) {
    if (leg.allowed) { return leg.allowed; }
    var tr = S.catalogue ? (S.catalogue.leg_transitions || S.catalogue.lifecycle.transitions) : {};
    return (tr[leg.status] || []).filter(function (x) { return x !== 'cancelled'; });
  }

  // --- the legs: from /api/v1/desk/legs (or, on a server without it, from the dispatch board) ----------
  function fromBoard(board) {
    var out = [];
    board.incidents.forEach(function (inc) {
      (inc.legs || []).forEach(function (l) {
        if (l.organisation_id !== ORG.id) { return; }
        var due = {}, cl = (l.sla && l.sla.clocks) || {};
        Object.keys(cl).forEach(function (k) { due[k] = cl[k].due_at; });
        out.push({id: l.id, incident_id: inc.id, incident_code: inc.code, channel: inc.channel, type: inc.type,
          severity: inc.severity, address: inc.address, lon: inc.lon, lat: inc.lat, description: inc.description,
          caller_masked: inc.caller_masked, reported_at: inc.reported_at, role: l.role, status: l.status, unit_id: l.unit_id,
          unit_code: l.unit_code, organisation_id: l.organisation_id, organisation_name: l.organisation_name,
          dispatched_at: l.dispatched_at, signed_off_at: l.signed_off_at, en_route_at: l.en_route_at, arrived_at: l.arrived_at,
          first_feedback_at: l.first_feedback_at, closed_at: l.closed_at, handed_back_at: l.handed_back_at || null,
          outcome: l.outcome || null, outcome_note: l.outcome_note || null, due: due, overdue: (l.sla && l.sla.overdue) || [],
          may_hand_back: l.status === 'dispatched' || l.status === 'signed_off'});
      });
    });
    out.sort(function (a, b) { return Date.parse(b.dispatched_at) - Date.parse(a.dispatched_at); });
    return out;
  }
  function fetchLegs(state) {
    if (S.fallback) {
      return api('GET', '/api/v1/dispatch/board' + q()).then(function (b) {
        var legs = fromBoard(b);
        return state === 'open' ? legs.filter(function (l) { return ['closed', 'cancelled', 'handed_back'].indexOf(l.status) < 0; }) : legs;
      });
    }
    return api('GET', '/api/v1/desk/legs' + q('state=' + state + '&limit=200')).then(function (r) {
      if (r.now) { S.skew = Date.parse(r.now) - Date.now(); }
      return Array.isArray(r) ? r : (r.legs || []);
    }, function (e) {
      if (e.status === 404 && !S.fallback && e.field !== 'id') { S.fallback = true; return fetchLegs(state); }
      throw e;
    });
  }

  function refresh() {
    var jobs = [fetchLegs('open')];
    if (S.tab !== 'open') { jobs.push(fetchLegs(S.tab)); }
    return Promise.all(jobs).then(function (r) {
      var found = {};
      [r[0], r[1] || []].forEach(function (list) { list.forEach(function (l) { found[l.id] = true; }); });
      // the selected leg has just left the open list (closed, handed back): read it where it went
      if (S.selected !== null && !found[S.selected] && S.tab === 'open') {
        return fetchLegs('all').then(function (all) { r.push(all); return r; });
      }
      return r;
    }).then(function (r) {
      S.open = r[0];
      S.shown = S.tab === 'open' ? r[0] : r[1];
      r.forEach(function (list) { (list || []).forEach(function (l) { S.legs[l.id] = l; }); });
      noticeNew(r[0]);
      renderList();
      renderDetail(false);
      setError(null, true);
    }).catch(function (e) { setError(e.message, true); });
  }
  function soon() {
    if (S.refreshTimer) { return; }
    S.refreshTimer = setTimeout(function () { S.refreshTimer = null; refresh(); }, 150);
  }

  // --- alerts: banner, highlighted rows, title flash, tone ----------------------------------------------
  function noticeNew(open) {
    var first = S.known === null;
    if (first) { S.known = {}; }
    open.forEach(function (l) {
      if (!S.known[l.id] && !first && l.status === 'dispatched') { S.alerts[l.id] = Date.now(); }
      S.known[l.id] = true;
    });
    var alerted = false, stillOpen = {};
    open.forEach(function (l) { stillOpen[l.id] = l.status === 'dispatched'; });
    Object.keys(S.alerts).forEach(function (id) {
      // signed off, handed back or cancelled elsewhere: the alert ends
      if (!stillOpen[id]) { delete S.alerts[id]; } else if (S.alerts[id] > S.lastBeep) { alerted = true; }
    });
    renderAlert();
    if (alerted) { beep(); }
  }
  function renderAlert() {
    var box = $('.desk-alert');
    var ids = Object.keys(S.alerts).sort(function (a, b) { return S.alerts[b] - S.alerts[a]; });
    if (!ids.length) { box.hidden = true; box.innerHTML = ''; return; }
    var l = S.legs[ids[0]];
    box.hidden = false;
    box.innerHTML = '<div class="msg"><b>' + esc(t('desk.alert.new')) + '</b> ' + esc(l.incident_code) + ' · ' + esc(l.channel) + ' ' +
      esc(typeName(l.type)) + ' · ' + esc(t('severity.' + l.severity)) + (l.address ? ' · ' + esc(l.address) : '') +
      (ids.length > 1 ? ' <span class="more">' + esc(t('desk.alert.more', {n: ids.length - 1})) + '</span>' : '') +
      '<br><span class="hint">' + esc(t('desk.alert.sign_within', {s: cfg.sla_s.sign_off})) + '</span> <span class="timer big" data-due="' +
      esc(l.due && l.due.sign_off) + '" data-testid="desk-alert-countdown"></span></div>' +
      '<div class="btns"><button type="button" class="desk-btn" data-action="open" data-leg="' + l.id + '" data-testid="desk-alert-open">' +
      esc(t('desk.alert.show')) + '</button><button type="button" class="desk-btn light" data-action="dismiss" data-testid="desk-alert-dismiss">' +
      esc(t('desk.alert.dismiss')) + '</button></div>';
    tick();
  }
  function alerting() { return Object.keys(S.alerts).length > 0; }

  function audio() {
    var AC = window.AudioContext || window.webkitAudioContext;
    if (!AC) { return null; }
    if (!S.audio) { S.audio = new AC(); }
    if (S.audio.state === 'suspended') { S.audio.resume(); }
    return S.audio;
  }
  // Two short tones (880 / 660 Hz) generated by Web Audio: no sound file to fetch.
  function beep() {
    S.lastBeep = Date.now();
    if (!S.sound || !S.audio) { return; }
    var ctx = audio();
    if (!ctx || ctx.state !== 'running') { return; }
    var t0 = ctx.currentTime;
    [0, 0.28, 0.56].forEach(function (d, i) {
      var o = ctx.createOscillator(), g = ctx.createGain();
      o.type = 'sine';
      o.frequency.value = i % 2 ? 660 : 880;
      g.gain.setValueAtTime(0.0001, t0 + d);
      g.gain.exponentialRampToValueAtTime(0.35, t0 + d + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, t0 + d + 0.22);
      o.connect(g);
      g.connect(ctx.destination);
      o.start(t0 + d);
      o.stop(t0 + d + 0.24);
    });
    S.beeps += 1;
    root.setAttribute('data-beeps', String(S.beeps));
  }
  function renderSound() {
    var b = $('.desk-sound');
    var armed = S.sound && S.audio && S.audio.state === 'running';
    b.setAttribute('aria-pressed', S.sound ? 'true' : 'false');
    b.classList.toggle('on', !!S.sound);
    b.textContent = !S.sound ? t('desk.sound.enable') : (armed ? t('desk.sound.on') : t('desk.sound.armed'));
  }
  function toggleSound() {
    S.sound = !S.sound;
    try { window.localStorage.setItem(SOUND_KEY, S.sound ? '1' : '0'); } catch (e) { /* private mode */ }
    if (S.sound) {
      var ctx = audio();  // created inside the click: browsers allow sound after a user gesture
      if (ctx && ctx.resume) { ctx.resume().then(function () { renderSound(); beep(); }); }
    }
    renderSound();
  }
  // Remembered "on": the first gesture anywhere on the page arms the tone.
  function armOnGesture() {
    function arm() {
      document.removeEventListener('pointerdown', arm, true);
      document.removeEventListener('keydown', arm, true);
      if (S.sound) { var ctx = audio(); if (ctx && ctx.resume) { ctx.resume().then(renderSound); } }
    }
    document.addEventListener('pointerdown', arm, true);
    document.addEventListener('keydown', arm, true);
  }

  // --- clocks ------------------------------------------------------------------------------------------
  var CLOCKS = [['sign_off', 'signed_off_at'], ['first_feedback', 'first_feedback_at'], ['close', 'closed_at']];
  function ended(leg) { return ['closed', 'cancelled', 'handed_back'].indexOf(leg.status) >= 0; }
  function clockHtml(leg, k, done, big) {
    var due = leg.due && leg.due[k];
    if (leg[done]) {
      var late = due && Date.parse(leg[done]) > Date.parse(due);
      return '<span class="timer done' + (late ? ' late' : '') + '">' + esc(late ? t('desk.clock.late') : t('desk.clock.met')) + ' ' +
        esc(shortTime(leg[done])) + '</span>';
    }
    if (ended(leg) || !due) { return '<span class="timer done">—</span>'; }
    return '<span class="timer' + (big ? ' big' : '') + '" data-due="' + esc(due) + '" data-testid="clock-' + k + '"></span>';
  }
  function nextClock(leg) {
    for (var i = 0; i < CLOCKS.length; i++) { if (!leg[CLOCKS[i][1]]) { return CLOCKS[i]; } }
    return null;
  }
  function tick() {
    var now = Date.now() + S.skew;
    var c = $('.desk-clock');
    if (c) { c.textContent = G.time(now, 'hms'); }
    var timers = root.querySelectorAll('.timer[data-due]');
    for (var i = 0; i < timers.length; i++) {
      var left = Date.parse(timers[i].getAttribute('data-due')) - now;
      if (isNaN(left)) { continue; }
      timers[i].textContent = left < 0 ? t('desk.clock.overdue', {t: span(left)}) : span(left);
      timers[i].classList.toggle('overdue', left < 0);
      timers[i].setAttribute('data-overdue', left < 0 ? 'true' : 'false');
    }
    if (alerting()) {
      S.flash = !S.flash;
      document.title = S.flash ? t('desk.alert.title') + ' ' + S.title : S.title;
      if (S.sound && Date.now() - S.lastBeep > 10000) { beep(); }
    } else if (document.title !== S.title) { document.title = S.title; }
  }

  // --- list ----------------------------------------------------------------------------------------------
  function statusTag(leg) {
    return '<span class="tag st-' + esc(leg.status) + '">' + esc(t(leg.status === 'handed_back' ? 'desk.status.handed_back' : 'dp.leg.' + leg.status)) + '</span>';
  }
  function renderList() {
    var box = $('.desk-list');
    var n = S.open.filter(function (l) { return l.status === 'dispatched'; }).length;
    $('.desk-tabs [data-state=open] .n').textContent = S.open.length ? '(' + S.open.length + (n ? ' · ' + t('desk.unsigned', {n: n}) : '') + ')' : '';
    if (!S.shown.length) { box.innerHTML = '<div class="empty-note">' + esc(t('desk.empty.' + S.tab)) + '</div>'; return; }
    box.innerHTML = S.shown.map(function (l) {
      var nc = ended(l) ? null : nextClock(l);
      return '<div class="desk-leg ch-' + esc(l.channel) + (S.selected === l.id ? ' sel' : '') + (S.alerts[l.id] ? ' new' : '') +
        (l.status === 'dispatched' ? ' unsigned' : '') + '" data-id="' + l.id + '" data-status="' + esc(l.status) +
        '" data-testid="desk-leg" tabindex="0" role="button"><div class="l1"><span class="code">' + esc(l.incident_code) + '</span>' +
        (nc ? '<span class="clk">' + esc(t('desk.clock.' + nc[0])) + ' ' + clockHtml(l, nc[0], nc[1]) + '</span>' : statusTag(l)) + '</div>' +
        '<div class="l2"><span>' + esc(l.channel) + ' · ' + esc(typeName(l.type)) + ' · ' + esc(t('severity.' + l.severity)) + '</span>' +
        (nc ? statusTag(l) : '') + '</div>' +
        '<div class="l3">' + (l.outcome ? '<b>' + esc(outcomeName(l.outcome)) + '</b> · ' : '') + esc(l.address || '') + ' <span class="muted">' + esc(shortTime(l.dispatched_at)) + '</span></div></div>';
    }).join('');
    tick();
  }

  // --- detail -------------------------------------------------------------------------------------------
  function signature(leg) { return JSON.stringify(FIELDS_SHOWN.map(function (k) { return leg[k]; }).concat([stepsOf(leg)])); }
  function actionsHtml(leg) {
    var steps = stepsOf(leg), h = '';
    var quick = steps.filter(function (s) { return s === 'signed_off' || ((s === 'en_route' || s === 'arrived') && leg.unit_id); });
    if (quick.length) {
      h += '<div class="desk-actions">' + quick.map(function (s) {
        return '<button type="button" class="desk-btn' + (s === 'signed_off' ? ' primary' : '') + '" data-action="go" data-to="' + s +
          '" data-testid="desk-go-' + s + '">' + esc(t('desk.go.' + s)) + '</button>';
      }).join('') + '</div>';
    }
    if ((steps.indexOf('en_route') >= 0 || steps.indexOf('arrived') >= 0) && !leg.unit_id) {
      h += '<div class="hint">' + esc(t('desk.need_unit')) + '</div>';
    }
    if (steps.indexOf('first_feedback') >= 0) {
      h += '<form class="desk-form" data-form="feedback"><label for="desk-fb">' + esc(t('desk.feedback.label')) + '</label>' +
        '<textarea id="desk-fb" name="note" rows="3" maxlength="2000" required data-testid="desk-feedback-note" placeholder="' +
        esc(t('desk.feedback.placeholder')) + '"></textarea><button type="submit" class="desk-btn primary" data-testid="desk-feedback-submit">' +
        esc(t('desk.feedback.submit')) + '</button></form>';
    }
    if (steps.indexOf('closed') >= 0) {
      var outs = outcomesFor(leg);
      h += '<form class="desk-form" data-form="close"><label for="desk-outcome">' + esc(t('desk.close.outcome')) + '</label>' +
        '<select id="desk-outcome" name="outcome" required data-testid="desk-outcome"><option value="">' + esc(t('desk.close.choose')) + '</option>' +
        outs.map(function (o) { return '<option value="' + esc(o.code) + '">' + esc(o[lang]) + '</option>'; }).join('') + '</select>' +
        '<label for="desk-close-note">' + esc(t('desk.close.note')) + '</label><textarea id="desk-close-note" name="note" rows="2" maxlength="2000" ' +
        'data-testid="desk-close-note"></textarea><button type="submit" class="desk-btn primary" data-testid="desk-close-submit">' +
        esc(t('desk.close.submit')) + '</button></form>';
    }
    if (leg.may_hand_back) {
      h += '<details class="desk-handback"><summary data-testid="desk-handback-open">' + esc(t('desk.handback.title')) + '</summary>' +
        '<form class="desk-form" data-form="hand_back"><label for="desk-hb">' + esc(t('desk.handback.reason')) + '</label>' +
        '<textarea id="desk-hb" name="reason" rows="2" maxlength="500" required data-testid="desk-handback-reason"></textarea>' +
        '<button type="submit" class="desk-btn warn" data-testid="desk-handback-submit">' + esc(t('desk.handback.submit')) + '</button></form></details>';
    }
    return h;
  }
  function renderDetail(force) {
    var body = $('.desk-detail-body');
    var leg = S.selected !== null ? S.legs[S.selected] : null;
    if (!leg) {
      body.innerHTML = '<div class="empty-note">' + esc(t('desk.select')) + '</div>';
      $('.desk-map').hidden = true;
      $('.desk-timeline').hidden = true;
      return;
    }
    var sig = signature(leg);
    if (!force && S.sig[leg.id] === sig) { return; }
    var changed = S.sig[leg.id] !== undefined && S.sig[leg.id] !== sig;
    S.sig[leg.id] = sig;
    // what the user is typing survives a live update of the same leg
    var kept = {};
    if (body.getAttribute('data-leg') === String(leg.id)) {
      body.querySelectorAll('textarea[id], select[id]').forEach(function (f) { kept[f.id] = f.value; });
    }
    body.setAttribute('data-leg', String(leg.id));
    var h = '<div class="desk-d-head" data-leg="' + leg.id + '" data-status="' + esc(leg.status) + '" data-testid="desk-leg-detail">' +
      '<h2>' + esc(leg.incident_code) + ' · ' + esc(typeName(leg.type)) + ' ' + statusTag(leg) + '</h2>' +
      '<dl class="desk-facts">' +
      '<dt>' + esc(t('desk.f.channel')) + '</dt><dd>' + esc(leg.channel) + ' · ' + esc(t('severity.' + leg.severity)) + ' · ' +
        esc(t('dp.role.' + leg.role)) + '</dd>' +
      '<dt>' + esc(t('desk.f.reported')) + '</dt><dd data-testid="desk-reported">' + esc(fullTime(leg.reported_at)) + '</dd>' +
      '<dt>' + esc(t('desk.f.dispatched')) + '</dt><dd>' + esc(fullTime(leg.dispatched_at)) + '</dd>' +
      (leg.address ? '<dt>' + esc(t('desk.f.address')) + '</dt><dd>' + esc(leg.address) + '</dd>' : '') +
      (leg.description ? '<dt>' + esc(t('desk.f.description')) + '</dt><dd>' + esc(leg.description) + '</dd>' : '') +
      (leg.caller_masked ? '<dt>' + esc(t('desk.f.caller')) + '</dt><dd>' + esc(leg.caller_masked) + '</dd>' : '') +
      '<dt>' + esc(t('desk.f.unit')) + '</dt><dd>' + esc(leg.unit_code || t('desk.f.no_unit')) + '</dd>' +
      (leg.first_feedback_note ? '<dt>' + esc(t('desk.f.feedback')) + '</dt><dd>' + esc(leg.first_feedback_note) + '</dd>' : '') +
      (leg.hand_back_reason ? '<dt>' + esc(t('desk.handback.reason')) + '</dt><dd data-testid="desk-handback-shown">' +
        esc(leg.hand_back_reason) + '</dd>' : '') +
      (leg.outcome ? '<dt>' + esc(t('desk.f.outcome')) + '</dt><dd data-testid="desk-outcome-shown">' + esc(outcomeName(leg.outcome)) +
        (leg.outcome_note ? ' · ' + esc(leg.outcome_note) : '') + '</dd>' : '') +
      '</dl><div class="desk-clocks">' + CLOCKS.map(function (c) {
        var due = leg.due && leg.due[c[0]];
        return '<div class="c"><div class="l">' + esc(t('desk.clock.' + c[0])) + '</div>' + clockHtml(leg, c[0], c[1], true) +
          '<div class="due">' + (due ? esc(t('desk.clock.due')) + ' ' + esc(shortTime(due)) : '') + '</div></div>';
      }).join('') + '</div><div class="desk-msg" role="alert" data-testid="desk-error" hidden></div>' + actionsHtml(leg) + '</div>';
    body.innerHTML = h;
    Object.keys(kept).forEach(function (id) { var f = document.getElementById(id); if (f && kept[id]) { f.value = kept[id]; } });
    tick();
    showMap(leg);
    if (changed || force || !S.timeline[leg.id]) { loadTimeline(leg); } else { renderTimeline(leg.id); }
  }
  // An action's error shows in the leg's detail; a loading error above the list.
  function setError(text, page) {
    var box = (!page && root.querySelector('.desk-detail .desk-msg')) || root.querySelector('.desk-page-msg');
    if (!box) { return; }
    box.hidden = !text;
    box.textContent = text || '';
  }

  // --- the small map of the leg's place ---------------------------------------------------------------
  function showMap(leg) {
    var el = $('.desk-map');
    if (!window.L || leg.lat === null || leg.lat === undefined) { el.hidden = true; return; }
    el.hidden = false;
    var ll = [leg.lat, leg.lon];
    if (!S.map) {
      S.map = L.map(el, {zoomControl: true, attributionControl: true, minZoom: 8, maxZoom: 18});
      S.map.attributionControl.setPrefix('Leaflet');
      if (cfg.roads && L.vectorGrid) {
        L.vectorGrid.protobuf(cfg.roads, {rendererFactory: L.canvas.tile, interactive: false, maxNativeZoom: 16, maxZoom: 18,
          vectorTileLayerStyles: {roads: function (p, z) { return G.roadStyle(p, z); }}}).addTo(S.map);
      }
      if (ORG.hq) {
        L.circleMarker([ORG.hq[1], ORG.hq[0]], {radius: 6, color: '#1d4ed8', fillColor: '#60a5fa', fillOpacity: 1, weight: 2})
          .bindTooltip(esc(ORG.name)).addTo(S.map);
      }
      S.marker = L.circleMarker(ll, {radius: 9, color: '#b91c1c', fillColor: '#ef4444', fillOpacity: 0.9, weight: 3}).addTo(S.map);
    }
    S.marker.setLatLng(ll);
    S.marker.unbindTooltip().bindTooltip(esc(leg.incident_code + (leg.address ? ' · ' + leg.address : '')));
    S.map.invalidateSize();
    S.map.setView(ll, 15);
  }

  // --- timeline ----------------------------------------------------------------------------------------
  function loadTimeline(leg) {
    var id = leg.id;
    var req = S.fallback
      ? api('GET', '/api/v1/dispatch/incidents/' + leg.incident_id).then(function (inc) {
        return {events: (inc.events || []).filter(function (e) { return e.leg_id === null || e.leg_id === id; })};
      })
      : api('GET', '/api/v1/dispatch/legs/' + id + '/timeline');
    req.then(function (r) {
      S.timeline[id] = r.events || [];
      if (S.selected === id) { renderTimeline(id); }
    }).catch(function (e) { if (S.selected === id) { setError(e.message); } });
  }
  function eventText(e) {
    var d = e.data || {};
    var kind = e.kind;
    if (kind === 'transition' && d.to) { kind = d.to === 'closed' ? 'leg_closed' : d.to; }
    var key = 'desk.ev.' + kind;
    return G.i18n[key] !== undefined ? t(key) : t('desk.ev.other', {kind: kind});
  }
  function eventDetail(e) {
    var d = e.data || {}, out = [], sep = t('desk.colon');
    if (d.outcome) { out.push(t('desk.f.outcome') + sep + outcomeName(d.outcome)); }
    if (d.note) { out.push(d.note); }
    if (d.reason && e.kind === 'handed_back') { out.push(t('desk.handback.reason') + sep + d.reason); }
    if (d.unit_code) { out.push(t('desk.f.unit') + ' ' + d.unit_code); }
    if (d.organisation_name) { out.push(d.organisation_name); }
    return out.join(' · ');
  }
  function renderTimeline(id) {
    var box = $('.desk-timeline');
    var evs = S.timeline[id];
    if (!evs) { box.hidden = true; return; }
    box.hidden = false;
    box.innerHTML = '<h3>' + esc(t('desk.timeline')) + ' <span class="hint">' + esc(t('desk.beijing_time')) + '</span></h3><ol class="desk-tl">' +
      evs.map(function (e) {
        return '<li data-testid="desk-event" data-kind="' + esc(e.kind) + '"><span class="at">' + esc(fullTime(e.at)) + '</span>' +
          '<span class="what">' + esc(eventText(e)) + '</span><span class="who">' + esc(e.actor_name || e.actor || '') + '</span>' +
          '<span class="client" title="' + esc(e.client || '') + '">' + esc(e.client || '') + '</span>' +
          (eventDetail(e) ? '<span class="det">' + esc(eventDetail(e)) + '</span>' : '') + '</li>';
      }).join('') + '</ol>';
  }

  function select(id, scroll) {
    S.selected = id;
    renderList();
    renderDetail(true);
    if (scroll && window.matchMedia && window.matchMedia('(max-width: 760px)').matches) {
      $('.desk-detail').scrollIntoView({block: 'start'});
    }
  }

  // --- actions -----------------------------------------------------------------------------------------
  function act(leg, path, body, el) {
    if (S.busy) { return; }
    S.busy = true;
    if (el) { el.disabled = true; }
    setError(null);
    api('POST', path, body).then(function () {
      delete S.alerts[leg.id];
      return refresh();
    }).catch(function (e) {
      setError(e.message);
      if (el) { el.disabled = false; }
    }).then(function () { S.busy = false; });
  }
  function onClick(ev) {
    var el = ev.target.closest('[data-action], .desk-leg');
    if (!el || !root.contains(el)) { return; }
    var action = el.getAttribute('data-action');
    if (!action && el.classList.contains('desk-leg')) { select(Number(el.getAttribute('data-id')), true); return; }
    if (action === 'sound') { toggleSound(); return; }
    if (action === 'tab') {
      S.tab = el.getAttribute('data-state');
      root.querySelectorAll('.desk-tabs [data-action=tab]').forEach(function (b) { b.classList.toggle('on', b === el); });
      refresh();
      return;
    }
    if (action === 'open') { select(Number(el.getAttribute('data-leg')), true); return; }
    if (action === 'dismiss') { S.alerts = {}; renderAlert(); renderList(); return; }
    var leg = S.legs[S.selected];
    if (action === 'go' && leg) {
      act(leg, '/api/v1/dispatch/legs/' + leg.id + '/transition', {to: el.getAttribute('data-to')}, el);
    }
  }
  function onSubmit(ev) {
    var form = ev.target.closest('form[data-form]');
    if (!form || !root.contains(form)) { return; }
    ev.preventDefault();
    var leg = S.legs[S.selected];
    if (!leg) { return; }
    var kind = form.getAttribute('data-form'), btn = form.querySelector('[type=submit]');
    var text = function (name) { return form[name] ? form[name].value.trim() : ''; };
    if (kind === 'feedback') {
      if (!text('note')) { setError(t('desk.feedback.need_note')); return; }
      act(leg, '/api/v1/dispatch/legs/' + leg.id + '/transition', {to: 'first_feedback', note: text('note')}, btn);
    } else if (kind === 'close') {
      if (!form.outcome.value) { setError(t('desk.close.need_outcome')); return; }
      var body = {to: 'closed', outcome: form.outcome.value};
      if (text('note')) { body.note = text('note'); }
      act(leg, '/api/v1/dispatch/legs/' + leg.id + '/transition', body, btn);
    } else if (kind === 'hand_back') {
      if (!text('reason')) { setError(t('desk.handback.need_reason')); return; }
      act(leg, '/api/v1/dispatch/legs/' + leg.id + '/hand_back', {reason: text('reason')}, btn);
    }
  }
  function onKey(ev) {
    if ((ev.key === 'Enter' || ev.key === ' ') && ev.target.classList && ev.target.classList.contains('desk-leg')) {
      ev.preventDefault();
      select(Number(ev.target.getAttribute('data-id')), true);
    }
  }

  // --- the live stream ---------------------------------------------------------------------------------
  function setConn(state) {
    var el = $('.desk-conn');
    el.setAttribute('data-state', state);
    el.textContent = t(state === 'polling' ? 'desk.conn.polling' : 'dp.conn.' + state);
  }
  function concernsUs(data) {
    var todo = [data];
    while (todo.length) {
      var x = todo.pop();
      if (x && typeof x === 'object') {
        for (var k in x) {
          if (!Object.prototype.hasOwnProperty.call(x, k)) { continue; }
          if ((k === 'organisation_id' || k === 'station_org_id' || k === 'traffic_org_id') && x[k] === ORG.id) { return true; }
          if (x[k] && typeof x[k] === 'object') { todo.push(x[k]); }
        }
      }
    }
    return false;
  }
  function handle(msg) {
    var type = msg.type || '';
    if (type === 'stream.reset') { soon(); return; }
    if (!/^(incident|leg|sla)\./.test(type)) { return; }
    if (concernsUs(msg.data) || (msg.data && S.legs[msg.data.leg_id])) { soon(); }
  }
  function startStream() {
    if (S.es || !window.EventSource) { if (!window.EventSource) { startPolling(); } return; }
    var es = S.es = new EventSource('/api/v1/stream?types=incident,leg,sla,stream' +
      (S.lastId !== null ? '&last_event_id=' + S.lastId : ''));
    var failures = 0;
    es.onopen = function () { failures = 0; setConn('live'); stopPolling(); soon(); };
    es.onerror = function () {
      failures += 1;
      if (es.readyState === EventSource.CLOSED || failures > 3) {
        // the stream cannot be held (a proxy that buffers, a server refusing it): poll instead, try again later
        es.close();
        S.es = null;
        startPolling();
        setTimeout(startStream, 30000);
      } else { setConn('reconnecting'); }
    };
    es.onmessage = function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (e.lastEventId) { S.lastId = Number(e.lastEventId); }
      handle(msg);
    };
  }
  function pollOnce() {
    var first = S.lastId === null;
    api('GET', '/api/v1/stream/events?after=' + (first ? 0 : S.lastId) + '&limit=' + (first ? 1 : 1000) + '&types=incident,leg,sla,stream')
      .then(function (r) {
        if (first) { S.lastId = r.last_id; soon(); return; }
        if (!r.complete) { soon(); }
        r.events.forEach(function (ev) { handle(ev); });
        S.lastId = r.events.length >= 1000 ? r.events[r.events.length - 1].id : Math.max(S.lastId, r.last_id);
      }).catch(function () { setConn('reconnecting'); });
  }
  function startPolling() {
    if (S.poll) { return; }
    setConn('polling');
    S.poll = setInterval(pollOnce, 5000);
    pollOnce();
  }
  function stopPolling() { if (S.poll) { clearInterval(S.poll); S.poll = null; } }
  // Open the stream once the page's own loading is over (an open stream is a request that never ends).
  function whenQuiet(fn) {
    var last = Date.now(), started = Date.now(), done = false;
    var obs = window.PerformanceObserver ? new PerformanceObserver(function () { last = Date.now(); }) : null;
    if (obs) { try { obs.observe({entryTypes: ['resource']}); } catch (e) { obs = null; } }
    (function check() {
      if (done) { return; }
      if ((document.readyState === 'complete' && Date.now() - last > 1200) || Date.now() - started > 15000) {
        done = true;
        if (obs) { obs.disconnect(); }
        fn();
      } else { setTimeout(check, 200); }
    })();
  }

  // --- start ------------------------------------------------------------------------------------------
  try { S.sound = window.localStorage.getItem(SOUND_KEY) === '1'; } catch (e) { S.sound = false; }
  renderSound();
  armOnGesture();
  root.addEventListener('click', onClick);
  root.addEventListener('submit', onSubmit);
  root.addEventListener('keydown', onKey);
  setInterval(tick, 1000);
  tick();
  api('GET', '/api/v1/dispatch/catalogue').then(function (cat) {
    S.catalogue = cat;
    return refresh();
  }).then(function () {
    whenQuiet(startStream);
  }).catch(function (e) {
    setError(e.message, true);
  });
  window.gisappDesk = S;  // for the browser tests (state only; nothing to call)
})();
