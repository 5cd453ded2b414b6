/* The dispatcher's live panel on /map/dispatch: the queue with SLA timers, an incident's legs
 * with recommended units (ETA, route on the map), one-click dispatch / assign / lifecycle
 * buttons, intake, and live updates from the server-sent-event stream /api/v1/stream
 * (EventSource resumes with Last-Event-ID after a disconnect, so nothing is missed).
 *
 * Uses the page's Leaflet map through window.gisapp (web/static/js/gisapp-map.js):
 * gisapp.map, gisapp.layers.units, gisapp.layers.incidents, gisapp.marker(kind, feature, latlng).
 * No CDN, no framework. MIT-licensed as part of the project.
 */
(function () {
  'use strict';

  var panel = document.getElementById('dispatch-panel');
  if (!panel) { return; }
  var lang = panel.getAttribute('data-lang') === 'en' ? 'en' : 'zh';
  // Texts come from the server's catalogue (gisapp/core/i18n.py) through gisapp.t: the panel's own
  // keys are under 'dp.', unit statuses, channels and severities are the map's own keys.
  function t(k) { return window.gisapp.t(/^(unit|channel|severity|cap)\./.test(k) ? k : 'dp.' + k); }
  function esc(s) { return window.gisapp.esc(s); }
  function $(sel, root) { return (root || panel).querySelector(sel); }

  var S = {
    G: null, catalogue: null, incidents: {}, units: {}, selected: null, skew: 0, lastId: null,
    es: null, picking: false, pickMarker: null, routeLayer: null, unitMarkers: {}, incidentMarkers: {},
    refetch: {}, recs: {}, plan: null, idemKey: null,
    choice: {},      // incident id -> {leg role: unit id} chosen by the dispatcher before dispatch
    reassign: {},    // leg id -> true while its "reassign" list is open
    legForm: null,   // {leg, to} while a closing / feedback note is being written
    ask: null,       // the pending question of the intake (duplicates, outside the county)
    closeOpen: null, // the incident whose "close without dispatch" box is open
    keepForms: null  // the incident whose detail forms keep their values over a re-render
  };

  // --- server calls ------------------------------------------------------------------------------
  function api(method, path, body) { return window.gisapp.api(method, path, body, {'X-Client': 'dispatch-page'}); }
  // the server's text in the page language (gisapp.api puts it in e.message)
  function errText(e) { return e && e.message ? e.message : (e && e.reason ? e.reason : String(e)); }
  // an organisation's name in the page language: the same source as the map's legend (organisation.name_en)
  function orgName(o, key) {
    key = key || 'organisation_name';
    if (!o) { return ''; }
    return (lang === 'en' && o[key + '_en']) ? o[key + '_en'] : (o[key] || '');
  }
  function fmtTime(v, style) { return window.gisapp.time(v, style); }

  // --- time --------------------------------------------------------------------------------------
  function now() { return Date.now() + S.skew; }
  function mmss(ms) {
    var neg = ms < 0, s = Math.floor(Math.abs(ms) / 1000);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    var txt = (h ? h + ':' + (m < 10 ? '0' : '') : '') + m + ':' + (r < 10 ? '0' : '') + r;
    return (neg ? '-' : '') + txt;
  }
  function timerHtml(due, done, state) {
    if (done || state === 'met' || state === 'late' || state === 'cancelled') {
      return '<span class="timer done">' + esc(t('clock.' + (state || 'met'))) + '</span>';
    }
    return '<span class="timer" data-due="' + esc(due) + '"></span>';
  }
  function tick() {
    var n = now();
    var clock = $('.dp-clock');
    if (clock) { clock.textContent = fmtTime(n, 'hms'); }
    var timers = panel.querySelectorAll('.timer[data-due]');
    for (var i = 0; i < timers.length; i++) {
      var left = Date.parse(timers[i].getAttribute('data-due')) - n;
      timers[i].textContent = mmss(left);
      timers[i].classList.toggle('overdue', left < 0);
      var item = timers[i].closest('.dp-item');
      if (item && left < 0) { item.classList.add('overdue'); }
    }
  }

  // --- incidents: queue --------------------------------------------------------------------------
  function typeName(code) {
    var ty = S.catalogue && S.catalogue.types.filter(function (x) { return x.code === code; })[0];
    return ty ? ty[lang] : code;
  }
  function nextDue(inc) {
    var best = null;
    (inc.legs || []).forEach(function (leg) {
      var cl = leg.sla && leg.sla.clocks;
      if (!cl) { return; }
      ['sign_off', 'first_feedback', 'close'].forEach(function (k) {
        var c = cl[k];
        if (c && c.state !== 'met' && c.state !== 'late' && c.state !== 'cancelled' && !c.done_at) {
          if (best === null || Date.parse(c.due_at) < Date.parse(best)) { best = c.due_at; }
        }
      });
    });
    return best;
  }
  function renderQueue() {
    var list = Object.keys(S.incidents).map(function (k) { return S.incidents[k]; })
      .filter(function (i) { return i.status === 'open' || i.status === 'dispatched'; });
    list.sort(function (a, b) {
      var da = a.legs && a.legs.length ? Date.parse(nextDue(a) || '2999-01-01') : -Infinity;
      var db = b.legs && b.legs.length ? Date.parse(nextDue(b) || '2999-01-01') : -Infinity;
      return da - db || (a.id - b.id);
    });
    $('.dp-count').textContent = list.length ? '(' + list.length + ')' : '';
    var q = $('#dp-queue');
    if (!list.length) { q.innerHTML = '<div class="empty-note">' + esc(t('queue.empty')) + '</div>'; return; }
    q.innerHTML = list.map(function (i) {
      var due = nextDue(i);
      var flags = (i.overdue && i.overdue.length ? '<span class="dp-tag flag">!</span> ' : '') +
        (needsOwner(i) ? '<span class="dp-tag open" data-testid="needs-owner">' + esc(t('owner.needed')) + '</span> ' : '') +
        (i.duplicate_candidates && i.duplicate_candidates.length ? '<span class="dp-tag flag">≈</span> ' : '');
      return '<div class="dp-item ch-' + esc(i.channel) + (S.selected === i.id ? ' sel' : '') + '" data-id="' + i.id +
        '" data-testid="queue-item"><div class="l1"><span class="code">' + esc(i.code) + '</span>' +
        (due ? timerHtml(due) : '<span class="dp-tag open">' + esc(t('status.open')) + '</span>') + '</div>' +
        '<div class="l2"><span>' + flags + esc(i.channel) + ' · ' + esc(typeName(i.type)) + ' · ' + esc(t('severity.' + i.severity)) +
        '</span><span>' + esc(t('status.' + i.status)) + '</span></div></div>';
    }).join('');
    tick();
  }

  // --- incidents: detail -------------------------------------------------------------------------
  function nextSteps(leg) {
    var tr = S.catalogue ? S.catalogue.lifecycle.transitions[leg.status] || [] : [];
    return tr;
  }
  function needsOwner(inc) { return !!(inc && (inc.needs_owner || inc.needs_owner_reason)); }
  function handBackReason(inc) {
    if (inc.needs_owner_reason) { return inc.needs_owner_reason; }
    if (inc.hand_back_reason) { return inc.hand_back_reason; }
    var back = (inc.legs || []).filter(function (l) { return l.status === 'handed_back'; });
    return back.length ? (back[back.length - 1].hand_back_reason || back[back.length - 1].outcome_note || '') : '';
  }
  function outcomesFor(inc, incidentLevel) {
    var list = (S.catalogue && S.catalogue.outcomes) || [];
    return list.filter(function (o) {
      if (incidentLevel ? !o.incident : o.leg === false) { return false; }
      return !o.categories || !inc.category || o.categories.indexOf(inc.category) >= 0;
    });
  }
  function outcomeSelect(inc, incidentLevel, testid) {
    return '<select name="outcome" data-testid="' + testid + '">' + outcomesFor(inc, incidentLevel).map(function (o) {
      return '<option value="' + esc(o.code) + '">' + esc(o[lang] || o.code) + '</option>';
    }).join('') + '</select>';
  }
  function clocksHtml(leg) {
    var cl = (leg.sla && leg.sla.clocks) || {};
    return '<div class="dp-clocks">' + ['sign_off', 'first_feedback', 'close'].map(function (k) {
      var c = cl[k] || {};
      return '<div>' + esc(t('clock.' + k)) + '<br>' + timerHtml(c.due_at, c.done_at, c.state) + '</div>';
    }).join('') + '</div>';
  }
  // A recommended unit and why: road time, distance, kind and crew, capabilities (the leg's need
  // marked), status and organisation. mode: 'plan' (choose before dispatch), 'assign', 'reassign'.
  function recsHtml(rec, mode, key, chosen) {
    if (!rec) { return ''; }
    if (!rec.units || !rec.units.length) {
      return '<div class="dp-recs empty-note" data-testid="rec-reason">' + esc(reasonText(rec)) + '</div>';
    }
    var need = rec.capability;
    return '<div class="dp-recs" data-testid="recs"><div class="hint">' + esc(t('detail.recs')) +
      (rec.method === 'straight_line' ? ' · ' + esc(t('detail.straight')) : '') + ' · ' + esc(t('rec.needs')) + ': ' +
      esc(need ? window.gisapp.t('cap.' + need, need) : t('rec.any_cap')) + '</div>' +
      rec.units.map(function (u, i) {
        var caps = (u.capabilities || []).map(function (c) {
          return '<span class="dp-cap' + (c === need ? ' need' : '') + '">' + esc(window.gisapp.t('cap.' + c, c)) + '</span>';
        }).join(' ');
        var btn = '';
        if (mode === 'plan') {
          var on = chosen === u.unit_id;
          btn = '<button type="button" class="dp-btn ' + (on ? '' : 'dp-btn-light') + '" data-action="choose" data-role="' +
            esc(key) + '" data-unit="' + u.unit_id + '" data-testid="choose" aria-pressed="' + on + '">' +
            esc(t(on ? 'rec.chosen' : 'rec.use')) + '</button>';
        } else if (mode === 'assign' || mode === 'reassign') {
          btn = '<button type="button" class="dp-btn dp-btn-light" data-action="' + mode + '" data-leg="' + key +
            '" data-unit="' + u.unit_id + '" data-testid="' + mode + '">' + esc(t(mode === 'assign' ? 'detail.assign' : 'detail.reassign')) + '</button>';
        }
        return '<div class="dp-rec' + (chosen === u.unit_id ? ' chosen' : '') + '" data-route="' + esc(mode === 'plan' ? 'plan-' + key : key) + ':' + i +
          '" data-unit="' + u.unit_id + '"><div class="r1"><span class="u">' + esc(u.code) + ' ' + esc(u.name || '') +
          '</span><span class="eta" data-testid="rec-eta">' + (u.eta_s / 60).toFixed(1) + ' ' + esc(t('min')) + '</span><span>' +
          (u.distance_m / 1000).toFixed(1) + ' ' + esc(t('km')) + '</span>' + btn + '</div><div class="r2" data-testid="rec-why">' +
          esc(orgName(u)) + (u.kind ? ' · ' + esc(window.gisapp.t('unit.kind.' + u.kind, u.kind)) : '') +
          (u.crew !== undefined && u.crew !== null ? ' · ' + esc(t('rec.crew').replace('{n}', u.crew)) : '') +
          (u.status ? ' · ' + esc(t('unit.' + u.status)) : '') + (caps ? ' · ' + caps : '') + '</div></div>';
      }).join('') + '</div>';
  }
  function legFormHtml(inc, leg, to) {
    return '<form class="dp-legform" data-leg="' + leg.id + '" data-to="' + esc(to) + '" data-testid="leg-form">' +
      (to === 'closed' ? '<label>' + esc(t('close.outcome')) + ' ' + outcomeSelect(inc, false, 'leg-outcome') + '</label>' : '') +
      '<textarea name="note" rows="2" maxlength="500" placeholder="' + esc(t(to === 'closed' ? 'close.note' : 'leg.note')) +
      '" data-testid="leg-note"></textarea><div class="dp-row"><button type="submit" class="dp-btn" data-testid="leg-form-submit">' +
      esc(t('go.' + to)) + '</button><button type="button" class="dp-btn dp-btn-light" data-action="legform-cancel">' +
      esc(t('ask.cancel')) + '</button><span class="dp-msg" role="status"></span></div></form>';
  }
  function orgChoices(inc) {
    var seen = {}, out = [];
    function add(id, o) { if (id && !seen[id]) { seen[id] = 1; out.push({id: id, name: orgName(o)}); } }
    (inc.legs || []).forEach(function (l) { add(l.organisation_id, l); });
    Object.keys(S.units).forEach(function (k) { var u = S.units[k]; add(u.organisation_id, u); });
    return out;
  }
  // rule names and reasons as a person reads them (issue 13): the rule's zh/en from the rules
  // file, else the i18n key rule.<name>; a reason by its code (dp.reason.<code>), never the English detail
  function ruleText(p) { return (lang === 'en' ? p.rule_en : p.rule_zh) || window.gisapp.t('rule.' + p.rule, p.rule); }
  function reasonText(o) {
    if (!o || !o.reason_code) { return t('detail.no_unit'); }
    return t('reason.' + o.reason_code).replace('{cap}', o.capability ? t('cap.' + o.capability) : '');
  }
  function renderDetail() {
    var box = $('#dp-detail');
    var inc = S.selected !== null ? S.incidents[S.selected] : null;
    if (!inc) { box.hidden = true; box.innerHTML = ''; clearRoute(); return; }
    box.hidden = false;
    var h = '<h3>' + esc(inc.code) + ' · ' + esc(typeName(inc.type)) + ' <span class="dp-tag">' + esc(t('status.' + inc.status)) +
      '</span></h3><div class="meta">' + esc(inc.channel) + ' · ' + esc(t('severity.' + inc.severity)) + ' · ' +
      esc(t('detail.reported')) + ' <span data-testid="reported-at">' + esc(fmtTime(inc.reported_at)) + '</span>' +
      (inc.address ? '<br>' + esc(inc.address) : '') + (inc.outside_county ? ' · <b>' + esc(t('detail.outside')) + '</b>' : '') +
      (inc.description ? '<br>' + esc(inc.description) : '') + '</div>' + callbackHtml(inc);
    var dups = (inc.duplicates || []).filter(function (d) { return d.status !== 'merged' && d.status !== 'cancelled'; });
    if (dups.length && (inc.status === 'open' || inc.status === 'dispatched')) {
      h += '<div class="meta dp-dups" data-testid="duplicates">' + esc(t('detail.duplicate_of')) + dups.map(function (d) {
        return '<b>' + esc(d.code) + '</b> <button class="dp-btn dp-btn-warn" data-action="merge" data-into="' + d.id +
          '" data-testid="merge">' + esc(t('detail.merge_into').replace('{code}', d.code)) + '</button>';
      }).join(' ') + '</div>';
    }
    if (needsOwner(inc) && inc.status !== 'closed') {
      var roles = (S.plan && S.plan.incident === inc.id ? S.plan.data.legs.map(function (l) { return l.role; }) : []);
      (inc.legs || []).forEach(function (l) { if (roles.indexOf(l.role) < 0) { roles.push(l.role); } });
      if (!roles.length) { roles = ['primary']; }
      h += '<div class="dp-owner" data-testid="needs-owner-box"><div><b>' + esc(t('owner.needed')) + '</b> · ' + esc(t('owner.reason')) +
        ': <span data-testid="hand-back-reason">' + esc(handBackReason(inc)) + '</span></div>' +
        '<form class="dp-redispatch" data-testid="redispatch-form"><div class="dp-row"><select name="role" aria-label="' + esc(t('owner.role')) + '">' +
        roles.map(function (r) { return '<option value="' + esc(r) + '">' + esc(t('role.' + r)) + '</option>'; }).join('') +
        '</select><select name="organisation_id" aria-label="' + esc(t('owner.org')) + '" data-testid="redispatch-org">' +
        orgChoices(inc).map(function (o) { return '<option value="' + o.id + '">' + esc(o.name) + '</option>'; }).join('') +
        '</select><button type="submit" class="dp-btn" data-testid="redispatch">' + esc(t('owner.redispatch')) + '</button></div>' +
        '<span class="dp-msg" role="status"></span></form></div>';
    }
    var openLegs = (inc.legs || []).filter(function (l) { return ['closed', 'cancelled', 'handed_back'].indexOf(l.status) < 0; });
    if (inc.status === 'open' && !openLegs.length) {
      var choice = S.choice[inc.id] || {};
      var any = Object.keys(choice).length > 0;
      if (!needsOwner(inc)) {
        h += '<div class="dp-actions"><button class="dp-btn" data-action="dispatch" data-testid="dispatch-btn">' +
          esc(t(any ? 'detail.dispatch_chosen' : 'detail.dispatch')) + '</button></div>';
      }
      if (S.plan && S.plan.incident === inc.id && !needsOwner(inc)) {
        h += '<div class="hint" data-testid="plan-rule">' + esc(t('detail.plan')) + ': ' + esc(ruleText(S.plan.data)) + '</div>';
        S.plan.data.legs.forEach(function (leg) {
          h += '<div class="dp-leg" data-plan-role="' + esc(leg.role) + '"><div class="hd"><span>' + esc(t('role.' + leg.role)) + ' · ' +
            esc(orgName(leg) || reasonText(leg)) + '</span>' + (leg.fallback_from_org_id ? '<span class="dp-tag flag">' + esc(t('detail.fallback')) + '</span>' : '') +
            '</div>' + recsHtml(leg.recommendation, 'plan', leg.role, choice[leg.role]) + '</div>';
        });
      }
      var outs = outcomesFor(inc, true);
      if (outs.length) {
        h += '<details class="dp-close" data-testid="close-box"' + (S.closeOpen === inc.id ? ' open' : '') + '><summary>' + esc(t('close.title')) + '</summary>' +
          '<form class="dp-closeform" data-testid="close-form"><label>' + esc(t('close.outcome')) + ' ' + outcomeSelect(inc, true, 'close-outcome') +
          '</label><textarea name="note" rows="2" maxlength="500" placeholder="' + esc(t('close.note')) + '"></textarea>' +
          '<div class="dp-row"><button type="submit" class="dp-btn dp-btn-warn" data-testid="close-submit">' + esc(t('close.submit')) +
          '</button><span class="dp-msg" role="status"></span></div></form></details>';
      }
    }
    (inc.legs || []).forEach(function (leg) {
      var canReassign = leg.unit_id && (leg.status === 'dispatched' || leg.status === 'signed_off' || leg.status === 'en_route');
      h += '<div class="dp-leg" data-leg="' + leg.id + '"><div class="hd"><span>' + esc(t('role.' + leg.role)) + ' · ' +
        '<span data-testid="leg-org">' + esc(orgName(leg)) + '</span></span><span class="dp-tag" data-testid="leg-status">' +
        esc(t('leg.' + leg.status)) + '</span></div>' +
        (leg.fallback_from_org_id ? '<div class="hint">' + esc(t('detail.fallback')) + '</div>' : '') +
        '<div>' + esc(t('detail.unit')) + ': <span data-testid="leg-unit">' + esc(leg.unit_code || '—') + '</span>' +
        (canReassign ? ' <button class="dp-btn dp-btn-light" data-action="show-reassign" data-leg="' + leg.id +
          '" data-testid="show-reassign">' + esc(t('detail.reassign_to')) + '</button>' : '') + '</div>' + clocksHtml(leg) +
        (leg.status === 'handed_back' ? '<div class="hint">' + esc(t('owner.reason')) + ': ' + esc(leg.hand_back_reason || leg.outcome_note || '') + '</div>' : '');
      if (S.legForm && S.legForm.leg === leg.id) {
        h += legFormHtml(inc, leg, S.legForm.to);
      } else {
        h += '<div class="dp-actions">' + nextSteps(leg).map(function (to) {
          return '<button class="dp-btn' + (to === 'cancelled' ? ' dp-btn-warn' : '') + '" data-action="go" data-leg="' + leg.id +
            '" data-to="' + to + '" data-testid="go-' + to + '">' + esc(t('go.' + to)) + '</button>';
        }).join('') + '</div>';
      }
      if (!leg.unit_id && (leg.status === 'dispatched' || leg.status === 'signed_off')) { h += recsHtml(S.recs[leg.id], 'assign', leg.id); }
      else if (canReassign && S.reassign[leg.id]) {
        var r = S.recs[leg.id];
        h += r ? recsHtml(r, 'reassign', leg.id) : '<div class="hint">' + esc(t('intake.geocoding').replace(/…$/, '')) + '…</div>';
      }
      h += '</div>';
    });
    // a live update re-renders the detail: what the dispatcher was writing stays (and the focus)
    var kept = {}, focus = null;
    Array.prototype.forEach.call(box.querySelectorAll('form textarea, form select, form input'), function (el) {
      var k = (el.form.className || '') + '|' + (el.form.getAttribute('data-leg') || '') + '|' + el.name;
      kept[k] = el.value;
      if (el === document.activeElement) { focus = k; }
    });
    box.innerHTML = h;
    Array.prototype.forEach.call(box.querySelectorAll('form textarea, form select, form input'), function (el) {
      var k = (el.form.className || '') + '|' + (el.form.getAttribute('data-leg') || '') + '|' + el.name;
      if (Object.prototype.hasOwnProperty.call(kept, k) && S.keepForms === S.selected) { el.value = kept[k]; }
      if (focus === k) { el.focus(); }
    });
    S.keepForms = S.selected;
    tick();
    drawFirstRoute();
  }
  function routeOf(key) {
    var parts = key.split(':'), i = Number(parts[1]), rec = null;
    if (parts[0].indexOf('plan-') === 0) {
      var role = parts[0].slice(5), legs = S.plan ? S.plan.data.legs : [];
      for (var j = 0; j < legs.length; j++) { if (legs[j].role === role) { rec = legs[j].recommendation; } }
    } else { rec = S.recs[Number(parts[0])]; }
    return rec && rec.units && rec.units[i] ? rec.units[i].route : null;
  }
  function clearRoute() { if (S.routeLayer) { S.routeLayer.clearLayers(); } }
  function drawRoute(geom) {
    if (!S.G || !geom) { return; }
    if (!S.routeLayer) { S.routeLayer = L.layerGroup().addTo(S.G.map); }
    S.routeLayer.clearLayers();
    L.geoJSON(geom, {style: {color: '#dc2626', weight: 5, opacity: 0.85, dashArray: '8 6'}}).addTo(S.routeLayer);
  }
  function drawFirstRoute() {
    var first = $('#dp-detail .dp-rec.chosen') || $('#dp-detail .dp-rec');
    if (first) { drawRoute(routeOf(first.getAttribute('data-route'))); } else { clearRoute(); }
  }
  function loadRecs(id, legId) {
    api('GET', '/api/v1/dispatch/legs/' + legId + '/recommendations').then(function (r) {
      S.recs[legId] = r;
      if (S.selected === id) { renderDetail(); }
    }).catch(function () {});
  }

  function select(id, reveal) {
    if (S.selected !== id) { S.legForm = null; S.reassign = {}; }
    S.selected = id;
    var inc = S.incidents[id];
    renderQueue();
    renderDetail();
    if (reveal) { $('#dp-detail').scrollIntoView({block: 'start'}); }
    if (!inc) { return; }
    if (S.G && inc.lat !== undefined) { S.G.map.panTo([inc.lat, inc.lon]); }
    if (inc.status === 'open') {
      api('GET', '/api/v1/dispatch/incidents/' + id + '/plan').then(function (p) {
        S.plan = {incident: id, data: p};
        if (S.selected === id) { renderDetail(); }
      }).catch(function () {});
    }
    (inc.legs || []).forEach(function (leg) {
      if ((!leg.unit_id && (leg.status === 'dispatched' || leg.status === 'signed_off')) || S.reassign[leg.id]) {
        loadRecs(id, leg.id);
      }
    });
  }

  function upsertIncident(inc) {
    var old = S.incidents[inc.id] || {};
    var merged = {};
    [old, inc].forEach(function (o) { for (var k in o) { if (Object.prototype.hasOwnProperty.call(o, k)) { merged[k] = o[k]; } } });
    S.incidents[inc.id] = merged;
    syncIncidentMarker(merged);
  }
  function refetchIncident(id) {
    if (S.refetch[id]) { return; }
    S.refetch[id] = setTimeout(function () {
      delete S.refetch[id];
      api('GET', '/api/v1/dispatch/incidents/' + id).then(function (inc) {
        delete inc.events;
        upsertIncident(inc);
        renderQueue();
        if (S.selected === id) { S.recs = {}; select(id); }
      }).catch(function () {});
    }, 150);
  }

  // --- map markers -------------------------------------------------------------------------------
  function indexMarkers() {
    var G = S.G;
    if (G.layers.units && G.layers.units.eachLayer) {
      G.layers.units.eachLayer(function (m) { if (m.feature) { S.unitMarkers[m.feature.properties.id] = m; } });
    }
    if (G.layers.incidents && G.layers.incidents.eachLayer) {
      // the markers the page came with select their incident too (not only those added live)
      G.layers.incidents.eachLayer(function (m) {
        if (!m.feature) { return; }
        var id = m.feature.properties.id;
        S.incidentMarkers[id] = m;
        m.on('click', function () { select(id, true); });
      });
    }
  }
  function syncIncidentMarker(inc) {
    var G = S.G;
    if (!G || !G.layers.incidents || inc.lat === undefined) { return; }
    var m = S.incidentMarkers[inc.id];
    var active = inc.status === 'open' || inc.status === 'dispatched';
    if (m && !active) { G.layers.incidents.removeLayer(m); delete S.incidentMarkers[inc.id]; return; }
    if (!m && active) {
      var f = {type: 'Feature', properties: {id: inc.id, code: inc.code, channel: inc.channel, type: inc.type,
        severity: inc.severity, status: inc.status, address: inc.address, reported_at: inc.reported_at}};
      m = G.marker('incident', f, [inc.lat, inc.lon]);
      m.feature = f;
      G.bindFeature(m, f, 'incident');
      m.on('click', function () { select(inc.id, true); });
      G.layers.incidents.addLayer(m);
      S.incidentMarkers[inc.id] = m;
    }
  }
  function syncUnit(u) {
    if (!u || u.id === undefined) { return; }
    var old = S.units[u.id] || {};
    for (var k in u) { if (Object.prototype.hasOwnProperty.call(u, k)) { old[k] = u[k]; } }
    S.units[u.id] = old;
    var G = S.G;
    if (!G || !G.layers.units || old.lon === null || old.lon === undefined) { return; }
    var m = S.unitMarkers[u.id];
    var f = {type: 'Feature', properties: {id: old.id, code: old.code, name: old.name, kind: old.kind, status: old.status,
      organisation_id: old.organisation_id, org_label: orgName(old), last_position_at: old.last_position_at}};
    if (!m) {
      m = G.marker('unit', f, [old.lat, old.lon]);
      m.feature = f;
      G.bindFeature(m, f, 'unit');
      G.layers.units.addLayer(m);
      S.unitMarkers[u.id] = m;
      return;
    }
    m.setLatLng([old.lat, old.lon]);
    if (m.feature && m.feature.properties.status !== old.status && m.setIcon) {
      m.setIcon(G.marker('unit', f, [old.lat, old.lon]).options.icon);
    }
    if (m.feature) { m.feature.properties.status = old.status; m.feature.properties.org_label = orgName(old); }
  }
  function renderUnits() {
    var counts = {};
    Object.keys(S.units).forEach(function (k) { var s = S.units[k].status; counts[s] = (counts[s] || 0) + 1; });
    $('#dp-units').innerHTML = ['available', 'assigned', 'en_route', 'on_scene', 'off_duty', 'out_of_service'].map(function (s) {
      return '<div class="kpi"><div class="v" data-testid="units-' + s + '">' + (counts[s] || 0) + '</div><div class="l">' +
        esc(t('unit.' + s)) + '</div></div>';
    }).join('');
  }

  // --- the stream --------------------------------------------------------------------------------
  function setConn(state) {
    var el = $('.dp-conn');
    el.setAttribute('data-state', state);
    el.textContent = t('conn.' + state);
  }
  function handle(msg) {
    var d = msg.data || {};
    var type = msg.type || '';
    if (type === 'stream.reset') { loadBoard(); return; }
    if (d.incident) { upsertIncident(d.incident); }
    if (d.unit) { syncUnit(d.unit); }
    if (d.old_unit) { syncUnit(d.old_unit); }  // a reassignment frees the leg's former unit
    (d.units || []).forEach(syncUnit);
    if (type.indexOf('incident.') === 0 || type.indexOf('leg.') === 0) {
      var id = d.incident ? d.incident.id : (d.leg ? d.leg.incident_id : null);
      // every leg change (sign-off, feedback, closing, hand-back, reassignment, by anyone) refetches
      // the incident: the queue and the open detail follow without a reload
      if (id !== null) { refetchIncident(id); }
    }
    if (type === 'sla.overdue' && d.incident_id) { refetchIncident(d.incident_id); }
    renderQueue();
    if (d.unit || d.units || d.old_unit) { renderUnits(); }
  }
  function startStream() {
    if (S.es) { return; }
    var url = '/api/v1/stream' + (S.lastId !== null ? '?last_event_id=' + S.lastId : '');
    var es = S.es = new EventSource(url);
    es.onopen = function () { setConn('live'); };
    es.onerror = function () { setConn(es.readyState === EventSource.CLOSED ? 'connecting' : 'reconnecting'); };
    es.onmessage = function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (e.lastEventId) { S.lastId = Number(e.lastEventId); }
      handle(msg);
    };
  }
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

  function loadBoard() {
    return Promise.all([api('GET', '/api/v1/dispatch/board'), api('GET', '/api/v1/dispatch/units')]).then(function (r) {
      var board = r[0], units = r[1];
      S.skew = Date.parse(board.now) - Date.now();
      if (S.lastId === null || board.last_event_id > S.lastId) { S.lastId = board.last_event_id; }
      S.incidents = {};
      board.incidents.forEach(upsertIncident);
      units.units.forEach(syncUnit);
      renderQueue();
      renderUnits();
      renderDetail();
    });
  }

  // --- intake ------------------------------------------------------------------------------------
  function fillTypes() {
    var form = $('#dp-intake-form');
    var ch = form.channel.value;
    form.type.innerHTML = S.catalogue.types.filter(function (x) { return x.channels.indexOf(ch) >= 0; }).map(function (x) {
      return '<option value="' + esc(x.code) + '">' + esc(x[lang]) + '</option>';
    }).join('');
    fillSeverities();
  }
  function fillSeverities() {
    var form = $('#dp-intake-form');
    var ty = S.catalogue.types.filter(function (x) { return x.code === form.type.value; })[0];
    form.severity.innerHTML = (ty ? ty.severities : ['none']).map(function (s) {
      return '<option value="' + s + '">' + esc(t('severity.' + s)) + '</option>';
    }).join('');
  }
  // A question in the intake form (possible duplicates, a point outside the county): the call is
  // not taken until the dispatcher answers; each answer resends the call with its flag.
  function askIntake(html, choices) {
    var box = $('.dp-ask');
    S.ask = choices;
    box.innerHTML = '<div class="q">' + html + '</div><div class="dp-row">' + choices.map(function (c, i) {
      return '<button type="button" class="dp-btn' + (c.light ? ' dp-btn-light' : '') + '" data-action="ask" data-i="' + i +
        '" data-testid="ask-' + c.id + '">' + esc(c.label) + '</button>';
    }).join('') + '</div>';
    box.hidden = false;
  }
  function closeAsk() { var box = $('.dp-ask'); box.hidden = true; box.innerHTML = ''; S.ask = null; }
  function submitIntake(ev) {
    ev.preventDefault();
    var form = ev.target, msg = $('.dp-msg', form);
    var body = {channel: form.channel.value, type: form.type.value, severity: form.severity.value};
    if (S.pickMarker) { var ll = S.pickMarker.getLatLng(); body.location = {type: 'Point', coordinates: [ll.lng, ll.lat]}; }
    ['address', 'caller_number', 'description'].forEach(function (k) { if (form[k].value.trim()) { body[k] = form[k].value.trim(); } });
    if (!body.location && !body.address) { msg.className = 'dp-msg'; msg.textContent = t('intake.need_location'); return; }
    if (form.dispatch.checked) { body.dispatch = true; body.auto_assign = true; }
    closeAsk();
    precheck(form, body);
  }
  // Ask first, take after: a point outside the county and possible duplicates are questions to the
  // dispatcher before anything is written (the server refuses both without the answer as well).
  function askDuplicates(form, body, dups) {
    askIntake(esc(t('dup.title')) + ' ' + dups.map(function (d) {
      return '<b data-testid="ask-dup-code">' + esc(d.code) + '</b> (' + esc(fmtTime(d.reported_at, 'hm')) + ', ' +
        Math.round(d.distance_m) + ' m)';
    }).join('、'), [
      {id: 'take-only', label: t('dup.take_only'), run: function () { delete body.dispatch; delete body.auto_assign; sendIntake(form, body); }},
      {id: 'dispatch-anyway', label: t('dup.dispatch_anyway'), light: true, run: function () { body.confirm_duplicates = true; sendIntake(form, body); }},
      {id: 'cancel', label: t('ask.cancel'), light: true, run: function () {}}]);
  }
  function askOutside(form, body) {
    askIntake(esc(t('outside.ask')), [
      {id: 'outside-take', label: t('outside.take'), run: function () { body.allow_outside = true; precheck(form, body); }},
      {id: 'cancel', label: t('ask.cancel'), light: true, run: function () {}}]);
  }
  function precheck(form, body) {
    var msg = $('.dp-msg', form);
    var q = body.location ? 'lon=' + body.location.coordinates[0].toFixed(6) + '&lat=' + body.location.coordinates[1].toFixed(6)
      : 'address=' + encodeURIComponent(body.address);
    api('GET', '/api/v1/dispatch/intake/check?' + q).then(function (c) {
      if (c.outside_county && !body.allow_outside) { askOutside(form, body); return; }
      if (body.dispatch && !body.confirm_duplicates && c.duplicates && c.duplicates.length) { askDuplicates(form, body, c.duplicates); return; }
      sendIntake(form, body);
    }).catch(function (e) { msg.className = 'dp-msg'; msg.textContent = errText(e); });
  }
  function sendIntake(form, body) {
    var msg = $('.dp-msg', form);
    // one key per call taken: a retried submit returns the same incident instead of a second one
    S.idemKey = S.idemKey || ('page-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 10));
    body.idempotency_key = S.idemKey;
    form.querySelector('[type=submit]').disabled = true;
    msg.textContent = '';
    api('POST', '/api/v1/dispatch/incidents', body).then(function (inc) {
      S.idemKey = null;
      msg.className = 'dp-msg ok';
      msg.textContent = t('intake.done') + ' ' + inc.code;
      form.address.value = form.caller_number.value = form.description.value = '';
      delete form.address.dataset.auto;
      if (S.pickMarker) { S.pickMarker.remove(); S.pickMarker = null; $('.dp-picked').textContent = ''; }
      delete inc.events;
      upsertIncident(inc);
      (inc.units || []).forEach(syncUnit);
      renderUnits();
      select(inc.id, true);
    }).catch(function (e) {
      var dups = e.body && e.body.duplicates;
      // a duplicate taken meanwhile at another desk: the server refused before writing anything
      if (e.status === 409 && e.field === 'confirm_duplicates' && dups) { askDuplicates(form, body, dups); return; }
      if (e.status === 422 && e.field === 'location' && /allow_outside/.test(e.reason || '') && !body.allow_outside) {
        askOutside(form, body);
        return;
      }
      msg.className = 'dp-msg';
      msg.textContent = errText(e);
    }).then(function () { form.querySelector('[type=submit]').disabled = false; });
  }

  // A point picked on the map: its place name from the gazetteer fills the address (unless typed).
  function pickPoint(latlng) {
    var G = S.G, form = $('#dp-intake-form');
    if (S.pickMarker) { S.pickMarker.setLatLng(latlng); } else { S.pickMarker = L.marker(latlng).addTo(G.map); }
    $('.dp-picked').textContent = latlng.lng.toFixed(5) + ', ' + latlng.lat.toFixed(5);
    if (form.address.value.trim() && !form.address.dataset.auto) { return; }
    form.address.placeholder = t('intake.geocoding');
    api('GET', '/api/v1/dispatch/reverse_geocode?lon=' + latlng.lng.toFixed(6) + '&lat=' + latlng.lat.toFixed(6)).then(function (r) {
      form.address.placeholder = t('intake.address');
      if (r.label) {
        form.address.value = r.label;
        form.address.dataset.auto = '1';
      } else {
        form.address.value = '';
        form.address.placeholder = t('intake.no_place');
      }
    }).catch(function () { form.address.placeholder = t('intake.address'); });
  }

  // --- clicks ------------------------------------------------------------------------------------
  function afterWrite(inc) {
    delete inc.events;
    upsertIncident(inc);
    (inc.units || []).forEach(syncUnit);  // e.g. the units a merge freed: available at once
    if (inc.units) { renderUnits(); }
    S.recs = {};
    S.legForm = null;
    S.reassign = {};
    if (inc.status === 'merged') { S.selected = null; }
    renderQueue();
    if (S.selected !== null) { select(S.selected); } else { renderDetail(); }
  }
  function failed(el, e, id) {
    el.disabled = false;
    el.title = errText(e);
    var box = el.closest('.dp-leg, .dp-detail');
    var m = box && box.querySelector('.dp-msg');
    if (!m && box) { m = document.createElement('div'); m.className = 'dp-msg'; m.setAttribute('role', 'status'); box.appendChild(m); }
    if (m) { m.className = 'dp-msg'; m.textContent = errText(e); }
    if (id !== null && id !== undefined) { refetchIncident(id); }
  }
  function onClick(ev) {
    var el = ev.target.closest('[data-action], .dp-item, .dp-rec');
    if (!el || !panel.contains(el)) { return; }
    var action = el.getAttribute('data-action');
    var id = S.selected;
    if (!action && el.classList.contains('dp-item')) { select(Number(el.getAttribute('data-id')), true); return; }
    if (!action && el.classList.contains('dp-rec')) { drawRoute(routeOf(el.getAttribute('data-route'))); return; }
    var run = null;
    if (action === 'pick') {
      S.picking = true;
      S.G.capturing = true;  // road tiles give no popup: the next map click is the point
      S.G.map.getContainer().classList.add('dp-picking');
      $('.dp-picked').textContent = t('intake.picking');
      return;
    }
    if (action === 'ask') {
      var c = S.ask && S.ask[Number(el.getAttribute('data-i'))];
      closeAsk();
      if (c) { c.run(); }
      return;
    }
    if (action === 'choose') {
      var ch = S.choice[id] = S.choice[id] || {};
      var role = el.getAttribute('data-role'), unit = Number(el.getAttribute('data-unit'));
      if (ch[role] === unit) { delete ch[role]; } else { ch[role] = unit; }
      renderDetail();
      return;
    }
    if (action === 'show-reassign') {
      var lid = Number(el.getAttribute('data-leg'));
      S.reassign[lid] = !S.reassign[lid];
      if (S.reassign[lid]) { delete S.recs[lid]; loadRecs(id, lid); }
      renderDetail();
      return;
    }
    if (action === 'legform-cancel') { S.legForm = null; renderDetail(); return; }
    if (action === 'dispatch') {
      var chosen = S.choice[id] || {};
      var body = {auto_assign: true};
      if (Object.keys(chosen).length) { body.units = chosen; }
      run = api('POST', '/api/v1/dispatch/incidents/' + id + '/dispatch', body).then(function (inc) { delete S.choice[id]; return inc; });
    }
    if (action === 'go') {
      var to = el.getAttribute('data-to');
      if (to === 'closed' || to === 'first_feedback') {  // an outcome and a note, or the feedback text
        S.legForm = {leg: Number(el.getAttribute('data-leg')), to: to};
        renderDetail();
        var note = $('#dp-detail .dp-legform textarea');
        if (note) { note.focus(); }
        return;
      }
      run = api('POST', '/api/v1/dispatch/legs/' + el.getAttribute('data-leg') + '/transition', {to: to});
    }
    if (action === 'assign') {
      run = api('POST', '/api/v1/dispatch/legs/' + el.getAttribute('data-leg') + '/assign', {unit_id: Number(el.getAttribute('data-unit'))});
    }
    if (action === 'reassign') {
      run = api('POST', '/api/v1/dispatch/legs/' + el.getAttribute('data-leg') + '/reassign', {unit_id: Number(el.getAttribute('data-unit'))});
    }
    if (action === 'merge') { run = api('POST', '/api/v1/dispatch/incidents/' + id + '/merge', {into: Number(el.getAttribute('data-into'))}); }
    if (!run) { return; }
    el.disabled = true;
    run.then(afterWrite).catch(function (e) { failed(el, e, id); });
  }
  function onSubmit(ev) {
    var form = ev.target, id = S.selected, run = null, btn = form.querySelector('[type=submit]');
    var msg = form.querySelector('.dp-msg');
    if (form.classList.contains('dp-legform')) {
      ev.preventDefault();
      var to = form.getAttribute('data-to'), note = form.note.value.trim();
      var body = {to: to};
      if (note) { body.note = note; }
      if (to === 'first_feedback' && !note) { msg.textContent = t('leg.need_note'); return; }
      if (form.outcome) { body.outcome = form.outcome.value; }
      run = api('POST', '/api/v1/dispatch/legs/' + form.getAttribute('data-leg') + '/transition', body);
    } else if (form.classList.contains('dp-closeform')) {
      ev.preventDefault();
      var cb = {outcome: form.outcome.value};
      if (form.note.value.trim()) { cb.note = form.note.value.trim(); }
      run = api('POST', '/api/v1/dispatch/incidents/' + id + '/close', cb);
    } else if (form.classList.contains('dp-redispatch')) {
      ev.preventDefault();
      run = api('POST', '/api/v1/dispatch/incidents/' + id + '/redispatch',
                {role: form.role.value, organisation_id: Number(form.organisation_id.value)});
    }
    if (!run) { return; }
    btn.disabled = true;
    run.then(afterWrite).catch(function (e) {
      btn.disabled = false;
      if (msg) { msg.className = 'dp-msg'; msg.textContent = errText(e); }
    });
  }

  // --- call-back (issue 13): the caller's full number on request; the server audits each read ----
  function callbackHtml(inc) {
    if (!inc.caller_masked) { return ''; }
    return '<div class="meta dp-callback" data-testid="callback">' + esc(t('callback.caller')) + ': <span class="dp-caller" ' +
      'data-testid="caller-number">' + esc(inc.caller_masked) + '</span> <button class="dp-btn dp-btn-light" data-callback="' +
      Number(inc.id) + '" data-testid="callback-btn">' + esc(t('callback.show')) + '</button></div>';
  }
  function onCallback(ev) {
    var btn = ev.target.closest('[data-callback]');
    if (!btn || !panel.contains(btn)) { return; }
    btn.disabled = true;
    api('GET', '/api/v1/dispatch/incidents/' + btn.getAttribute('data-callback') + '/caller').then(function (r) {
      btn.parentNode.querySelector('.dp-caller').innerHTML = '<a href="tel:' + esc(encodeURIComponent(r.caller_number)) +
        '" data-testid="caller-full">' + esc(r.caller_number) + '</a> · ' + esc(t('callback.call'));
      btn.remove();
    }).catch(function (e) {
      btn.disabled = false;
      btn.parentNode.querySelector('.dp-caller').textContent += ' · ' + errText(e);
    });
  }

  function init(G) {
    S.G = G;
    indexMarkers();
    panel.addEventListener('click', onClick);
    panel.addEventListener('submit', onSubmit);
    // <details> toggles do not bubble: listen in the capture phase; re-rendering keeps it open
    panel.addEventListener('toggle', function (ev) {
      if (ev.target.classList && ev.target.classList.contains('dp-close') && ev.target.isConnected) { S.closeOpen = ev.target.open ? S.selected : null; }
    }, true);
    // the toggle event comes a task later: a live update re-rendering the detail in between
    // would lose it, so the click on the summary already records what the box will be
    panel.addEventListener('click', function (ev) {
      var sum = ev.target.closest && ev.target.closest('details.dp-close > summary');
      if (sum) { S.closeOpen = sum.parentNode.open ? null : S.selected; }
    }, true);
    panel.addEventListener('click', onCallback);
    G.map.on('click', function (e) {
      if (!S.picking) { return; }
      S.picking = false;
      G.capturing = false;
      G.map.getContainer().classList.remove('dp-picking');
      pickPoint(e.latlng);
    });
    var form = $('#dp-intake-form');
    form.address.addEventListener('input', function () { delete form.address.dataset.auto; });
    form.addEventListener('submit', submitIntake);
    api('GET', '/api/v1/dispatch/catalogue').then(function (cat) {
      S.catalogue = cat;
      form.channel.addEventListener('change', fillTypes);
      form.type.addEventListener('change', fillSeverities);
      fillTypes();
      return loadBoard();
    }).then(function () {
      whenQuiet(startStream);
    }).catch(function (e) { $('#dp-queue').textContent = errText(e); });
    setInterval(tick, 1000);
  }

  if (window.gisapp && window.gisapp.onReady) { window.gisapp.onReady(init); }
  else { document.addEventListener('gisapp:ready', function (e) { init(e.detail); }); }
})();
