/* gisapp map helpers: popups and tooltips, marker icons, vector-tile styles, legends, the GCJ-02
 * display transform for AMap-style basemaps, and the registry of a page's layers.
 *
 * Every map page creates `window.gisapp` through gisapp.configure(config, map) (see
 * layers/compose.py); the style tables and texts come from the server so that legends, popups
 * and features always agree. Page scripts (dispatch.js, planning) use:
 *   gisapp.map              the Leaflet map
 *   gisapp.layers[key]      each layer by key ('units', 'incidents', 'roads', ...)
 *   gisapp.onReady(fn)      run fn(gisapp) once the layers are registered
 *   gisapp.marker(kind, feature, latlng), gisapp.bindFeature(layer, feature, kind)
 *   gisapp.t(key)           a UI text in the page's language (gisapp/core/i18n.py)
 *   gisapp.esc(text)        text escaped for HTML
 *   gisapp.api(method, path, body, headers)   a JSON API call (rejects with the server's error)
 * This file is MIT-licensed as part of the project.
 */
(function () {
  'use strict';
  var G = window.gisapp = window.gisapp || {};
  G.layers = G.layers || {};
  G.i18n = G.i18n || {};
  G.specs = G.specs || {};
  G.style = G.style || {};
  var readyQueue = [];
  G.isReady = false;

  // Leaflet.VectorGrid 1.3 calls L.DomEvent.fakeStop, which Leaflet 1.8 removed.
  if (window.L && L.DomEvent && !L.DomEvent.fakeStop) {
    L.DomEvent.fakeStop = function (e) { if (e) { e._stopped = true; } return true; };
  }

  // Leaflet.VectorGrid's canvas tiles (L.canvas.tile) take every click on the map where a tile is
  // drawn: Leaflet 1.9 marks canvas containers `_leaflet_disable_events`, so the map never sees the
  // click, and VectorGrid forwards it only when it hits a feature (and then stops it). With the road
  // tiles on (the default) a map click handler (the dispatcher's "pick on the map") never ran.
  // Here a tile click always reaches the map as well: first the feature hit (its popup), then the map.
  // (VectorGrid may load after this file: the patch is applied when the map is configured.)
  function patchVectorGrid() {
    if (!(window.L && L.Canvas && L.Canvas.Tile) || L.Canvas.Tile.prototype._gisappClicks) { return; }
    L.Canvas.Tile.prototype._gisappClicks = true;
    L.Canvas.Tile.prototype._onClick = function (e) {
      var map = this._map;
      if (!map) { return; }
      var point = map.mouseEventToLayerPoint(e).subtract(this.getOffset()), hit = null;
      for (var id in this._layers) {
        var layer = this._layers[id];
        if (layer.options.interactive && layer._containsPoint(point) && !map._draggableMoved(layer)) { hit = layer; }
      }
      if (e.type === 'click' && map._draggableMoved(map)) { return; }
      // while a page captures map clicks (G.capture), features give no popup: the click is the page's
      if (hit && G.capturing) { hit = null; }
      map._fireDOMEvent(e, e.type, hit ? [hit] : undefined);
    };
  }
  patchVectorGrid();

  G.configure = function (cfg, map) {
    for (var k in cfg) { if (Object.prototype.hasOwnProperty.call(cfg, k)) { G[k] = cfg[k]; } }
    G.map = map;
    patchVectorGrid();
    map.attributionControl.setPrefix('Leaflet');
  };

  G.onReady = function (fn) { if (G.isReady) { fn(G); } else { readyQueue.push(fn); } };
  G.ready = function () {
    G.isReady = true;
    while (readyQueue.length) { readyQueue.shift()(G); }
    document.dispatchEvent(new CustomEvent('gisapp:ready', {detail: G}));
  };

  G.t = function (key, fallback) {
    var v = G.i18n[key];
    return v === undefined ? (fallback === undefined ? key : fallback) : v;
  };

  // G.t with {name} placeholders filled from params.
  G.tf = function (key, params) {
    var s = G.t(key);
    if (params) { Object.keys(params).forEach(function (p) { s = s.split('{' + p + '}').join(String(params[p])); }); }
    return s;
  };

  // A page script's configuration (the server's <script type="application/json" id=...>): its
  // messages and time zone become gisapp's; null when the page does not have it.
  G.pageConfig = function (id) {
    var el = document.getElementById(id);
    if (!el) { return null; }
    var cfg = JSON.parse(el.textContent);
    G.i18n = cfg.i18n || {};
    G.tz = cfg.timezone;
    return cfg;
  };

  // One JSON API call for every page script: resolves with the body, rejects with an Error whose
  // message is the server's `message` (its text in the user's language; else 'field: reason') and
  // which carries the server's {error, field, reason, message, key} and status.
  G.api = function (method, path, body, headers) {
    var opts = {method: method, credentials: 'same-origin', headers: {'Accept': 'application/json'}};
    // the page's CSRF token (meta csrf-token): writes with the session cookie need it or a same-site Origin
    var csrf = document.querySelector('meta[name="csrf-token"]');
    if (csrf && method !== 'GET' && method !== 'HEAD') { opts.headers['X-CSRF-Token'] = csrf.getAttribute('content'); }
    for (var h in (headers || {})) { if (Object.prototype.hasOwnProperty.call(headers, h)) { opts.headers[h] = headers[h]; } }
    if (body !== undefined) { opts.headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
    return fetch(path, opts).then(function (r) {
      return r.json().catch(function () { return {reason: r.statusText}; }).then(function (j) {
        if (r.ok) { return j; }
        // j.message is the server's text in the page language; field: reason is the English detail
        var e = new Error(j.message || ((j.field ? j.field + ': ' : '') + (j.reason || r.statusText)));
        e.status = r.status; e.body = j; e.error = j.error; e.field = j.field; e.reason = j.reason || r.statusText;
        throw e;
      });
    });
  };

  // --- times: every time a person reads is in the server's local time zone (setting
  // local_timezone, passed to the page as gisapp.tz), whatever the browser's own zone is.
  // G.time(v) -> '2026-12-04 01:18'; G.time(v, 'hms') -> '01:18:05'; G.time(v, 'hm') -> '01:18';
  // G.time(v, 'dhm') -> '12-04 01:18'. v: an ISO string with offset, a Date or epoch milliseconds.
  var fmtCache = {};
  function tzParts(d) {
    var tz = G.tz || 'Asia/Shanghai';
    var f = fmtCache[tz];
    if (!f) {
      try {
        f = new Intl.DateTimeFormat('en-GB', {timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit',
          hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'});
      } catch (err) {
        f = new Intl.DateTimeFormat('en-GB', {timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit',
          day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23'});
      }
      fmtCache[tz] = f;
    }
    var out = {};
    f.formatToParts(d).forEach(function (p) { out[p.type] = p.value; });
    if (out.hour === '24') { out.hour = '00'; }
    return out;
  }
  G.time = function (v, style) {
    if (v === null || v === undefined || v === '') { return '—'; }
    var d = v instanceof Date ? v : new Date(typeof v === 'number' ? v : String(v));
    if (isNaN(d.getTime())) { return String(v); }
    var p = tzParts(d);
    switch (style) {
      case 'hms': return p.hour + ':' + p.minute + ':' + p.second;
      case 'hm': return p.hour + ':' + p.minute;
      case 'dhm': return p.month + '-' + p.day + ' ' + p.hour + ':' + p.minute;
      case 'full': return p.year + '-' + p.month + '-' + p.day + ' ' + p.hour + ':' + p.minute + ':' + p.second;
      default: return p.year + '-' + p.month + '-' + p.day + ' ' + p.hour + ':' + p.minute;
    }
  };

  var ESC = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'};
  G.esc = function (s) { return String(s === null || s === undefined ? '' : s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); };

  G.fmt = function (v, fmt) {
    if (v === null || v === undefined || v === '') { return '—'; }
    fmt = fmt || 'text';
    if (fmt.indexOf('enum:') === 0) { return G.t(fmt.slice(5) + v, String(v)); }
    switch (fmt) {
      case 'int': return Math.round(Number(v)).toLocaleString();
      case 'num': return Number(v).toLocaleString(undefined, {maximumFractionDigits: 2});
      case 'pct': return (Number(v) * 100).toFixed(1) + '%';
      case 'min_s': return (Number(v) / 60).toFixed(1);
      case 'min': return Number(v).toFixed(1);
      case 'km': return (Number(v) / 1000).toFixed(2);
      case 'm': return Math.round(Number(v)) + ' m';
      case 'time': return G.time(v);
      case 'bool': return v ? G.t('prop.yes') : G.t('prop.no');
      case 'list':
        if (typeof v === 'string') { v = v.replace(/^[{[]|[}\]]$/g, '').split(','); }
        return v.map(function (x) { return G.t('cap.' + x, String(x)); }).join('、');
      default: return String(v);
    }
  };

  G.popupHtml = function (props, kind) {
    var spec = G.specs[kind] || {fields: []};
    var title = props[spec.title] || props.name || props.code || '';
    var rows = spec.fields.map(function (f) {
      return '<tr><th>' + G.esc(f[0]) + '</th><td>' + G.esc(G.fmt(props[f[1]], f[2])) + '</td></tr>';
    }).join('');
    return '<div class="gp"><div class="gp-title">' + G.esc(title) + '</div><table class="gp-table">' + rows + '</table></div>';
  };

  G.bindFeature = function (layer, feature, kind, highlight) {
    var spec = G.specs[kind];
    var props = feature.properties || {};
    if (highlight && layer.setStyle) {
      layer.on('mouseover', function () { layer.setStyle(highlight); });
      layer.on('mouseout', function () { layer.setStyle(props.style || {}); });
    }
    if (!spec) { return; }
    var tip = props[spec.tooltip];
    if (tip !== undefined && tip !== null && tip !== '') {
      layer.bindTooltip(G.esc(tip), {sticky: !(layer instanceof L.Marker), direction: 'top', className: 'gp-tip'});
    }
    layer.bindPopup(function () { return G.popupHtml(props, kind); }, {maxWidth: 320});
  };

  // Fetch a hidden layer's features the first time it is shown (``GeoLayer(lazy_url=...)``).
  G.lazy = function (layer, url) {
    var state = 'idle';
    function load() {
      if (state !== 'idle') { return; }
      state = 'loading';
      fetch(url, {credentials: 'same-origin', headers: {Accept: 'application/geo+json'}})
        .then(function (r) { if (!r.ok) { throw new Error(url + ': ' + r.status); } return r.json(); })
        .then(function (fc) { layer.addData(fc); state = 'loaded'; layer.fire('gisapp:loaded'); })
        .catch(function (e) { state = 'idle'; if (window.console) { console.warn(e); } });
    }
    layer.on('add', load);
  };
  G.lazyHeat = function (layer, url) {
    var loaded = false;
    layer.on('add', function () {
      if (loaded) { return; }
      loaded = true;
      fetch(url, {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (d) {
        layer.setOptions({max: d.max});
        layer.setLatLngs(d.points);
      });
    });
  };

  G.bindTiles = function (grid, kind) {
    patchVectorGrid();
    grid.on('click', function (e) {
      if (!e.layer || !e.layer.properties) { return; }
      if (G.capturing) { return; }
      L.popup({maxWidth: 320}).setLatLng(e.latlng).setContent(G.popupHtml(e.layer.properties, kind)).openOn(G.map);
    });
  };

  // --- marker icons -------------------------------------------------------------------------------
  G.svg = function (icon, cls) {
    var name = String(icon).replace(/^fa-/, '');
    return '<svg class="ic ' + (cls || '') + '" aria-hidden="true"><use href="/static/vendor/fontawesome/icons.svg#fa-' + name + '"></use></svg>';
  };

  function badge(color, icon, extraClass, ring) {
    var style = 'background:' + color + (ring ? ';box-shadow:0 0 0 3px ' + ring : '');
    return L.divIcon({
      className: 'gm ' + (extraClass || ''),
      html: '<span class="gm-badge" style="' + style + '">' + G.svg(icon) + '</span>',
      iconSize: [26, 26], iconAnchor: [13, 13], popupAnchor: [0, -12], tooltipAnchor: [0, -12]
    });
  }
  G.icon = badge;

  G.marker = function (kind, f, latlng) {
    var p = f.properties || {};
    var st = G.style;
    switch (kind) {
      case 'organisation': {
        var o = st.org[p.kind] || st.org.station;
        return L.marker(latlng, {icon: badge(o.color, o.icon, 'gm-org gm-' + p.kind, p.merged ? st.mergedRing : null),
                                 zIndexOffset: 500, riseOnHover: true});
      }
      case 'unit': {
        var c = st.unitStatus[p.status] || '#64748b';
        var ic = st.unitKindIcons[p.kind] || 'fa-car-side';
        return L.marker(latlng, {icon: badge(c, ic, 'gm-unit gm-unit-' + p.status), zIndexOffset: 800, riseOnHover: true});
      }
      case 'incident': {
        var ch = st.channel[p.channel] || st.channel['110'];
        var severe = p.severity === 'injury' || p.severity === 'fatal';
        return L.marker(latlng, {icon: badge(ch.color, ch.icon, 'gm-inc' + (severe ? ' gm-severe' : ''), severe ? '#dc2626' : null),
                                 zIndexOffset: 1000, riseOnHover: true});
      }
      case 'service_point':
        return L.marker(latlng, {icon: badge('#9333ea', 'fa-id-card', 'gm-sp'), riseOnHover: true});
      case 'village':
        return L.circleMarker(latlng, {radius: 3, color: '#8b6f47', weight: 1, fillColor: '#e7d8bf', fillOpacity: 1});
      default:
        return L.circleMarker(latlng, {radius: 4});
    }
  };

  // --- vector-tile styles ---------------------------------------------------------------------------
  function zoomFactor(z) { return z >= 15 ? 1.9 : z >= 14 ? 1.6 : z >= 13 ? 1.3 : z >= 12 ? 1.1 : 1.0; }

  G.roadStyle = function (p, z) {
    var s = G.style.roads[p.class] || G.style.roads.other;
    return {color: s.color, weight: s.weight * zoomFactor(z), opacity: 0.95, lineCap: 'round', lineJoin: 'round'};
  };

  G.timeColor = function (seconds) {
    if (seconds === null || seconds === undefined || seconds < 0) { return G.style.unreachable; }
    var m = seconds / 60, b = G.style.timeBreaksMin, c = G.style.timeColors;
    for (var i = 0; i < b.length; i++) { if (m <= b[i]) { return c[i]; } }
    return c[c.length - 1];
  };

  G.coverageStyle = function (p, z, field) {
    var s = G.style.roads[p.class] || G.style.roads.other;
    var w = Math.max(1.2, s.weight * zoomFactor(z));
    var time = p[field || 't'];
    var reachable = time !== null && time !== undefined && time >= 0;
    var line = {color: G.timeColor(reachable ? time : null), weight: w, opacity: 0.95, lineCap: 'round',
                dashArray: reachable ? null : '4 4'};
    var gap = !reachable || (p.target !== undefined && time > p.target);
    if (!gap) { return line; }
    var h = G.style.gapHalo;
    return [{color: h.color, weight: w + h.weight_add, opacity: h.opacity, lineCap: 'round'}, line];
  };

  G.gridStyle = function () {
    return {color: G.style.gridLine, weight: 1, dashArray: '3 3', fill: true, fillOpacity: 0.0};
  };

  G.serviceAreaStyle = function (p) {
    var cols = G.style.serviceAreaColors, budgets = G.serviceAreaBudgets || [5, 10, 15, 20, 30];
    var i = 0;
    while (i < budgets.length - 1 && p.budget_min > budgets[i]) { i++; }
    return {color: cols[Math.min(i, cols.length - 1)], weight: 1.2, fillColor: cols[Math.min(i, cols.length - 1)],
            fillOpacity: 0.28};
  };

  // --- legend that follows the layer control -------------------------------------------------------
  G.addLegend = function (map, title, sections) {
    var ctl = L.control({position: 'bottomright'});
    ctl.onAdd = function () {
      var div = L.DomUtil.create('div', 'gisapp-legend leaflet-bar');
      var head = L.DomUtil.create('div', 'lg-head', div);
      head.innerHTML = G.svg('list') + ' ' + G.esc(title) + '<span class="lg-toggle">−</span>';
      var body = L.DomUtil.create('div', 'lg-body', div);
      sections.forEach(function (s) {
        var sec = L.DomUtil.create('div', 'lg-section', body);
        sec.innerHTML = s.html;
        s.el = sec;
      });
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      head.addEventListener('click', function () {
        var hidden = body.style.display === 'none';
        body.style.display = hidden ? '' : 'none';
        head.querySelector('.lg-toggle').textContent = hidden ? '−' : '+';
      });
      return div;
    };
    ctl.addTo(map);
    function refresh() {
      sections.forEach(function (s) { s.el.style.display = map.hasLayer(s.layer) ? '' : 'none'; });
    }
    map.on('overlayadd overlayremove layeradd layerremove', refresh);
    refresh();
    G.legend = {control: ctl, refresh: refresh, sections: sections};
  };

  // --- focus a feature from a side panel -------------------------------------------------------------
  G.focus = function (key, id) {
    var layer = G.layers[key];
    if (!layer) { return false; }
    if (!G.map.hasLayer(layer)) {
      if (layer.getLayers && layer.getLayers().length === 0) {  // a lazy layer: focus once it has loaded
        layer.once('gisapp:loaded', function () { G.focus(key, id); });
      }
      G.map.addLayer(layer);
    }
    var found = null;
    layer.eachLayer(function (l) { if (l.feature && l.feature.properties && l.feature.properties.id === id) { found = l; } });
    if (!found) { return false; }
    if (found.getBounds) { G.map.fitBounds(found.getBounds(), {maxZoom: 15, padding: [40, 40]}); }
    else { G.map.setView(found.getLatLng(), Math.max(G.map.getZoom(), 14)); }
    found.openPopup(found.getBounds ? found.getBounds().getCenter() : undefined);
    return true;
  };

  // Side-panel rows focus their feature (data-focus="<layer key>" data-focus-id="<id>") and pickers
  // with data-autosubmit submit their form: delegated listeners, no inline handlers (CSP).
  document.addEventListener('click', function (ev) {
    var row = ev.target && ev.target.closest ? ev.target.closest('[data-focus][data-focus-id]') : null;
    if (row && G.map) { G.focus(row.getAttribute('data-focus'), Number(row.getAttribute('data-focus-id'))); }
  });
  document.addEventListener('change', function (ev) {
    var el = ev.target;
    if (el && el.hasAttribute && el.hasAttribute('data-autosubmit') && el.form) { el.form.submit(); }
  });

  // --- response radius on demand (routing service) -----------------------------------------------
  G.loadServiceAreas = function (params, onDone) {
    var layer = G.layers.service_areas;
    var url = (G.endpoints && G.endpoints.serviceAreas) || '';
    if (!layer || !url) { if (onDone) { onDone(false, G.t('coverage.sa_unavailable')); } return; }
    var qs = Object.keys(params).map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(params[k]); }).join('&');
    fetch(url + (url.indexOf('?') < 0 ? '?' : '&') + qs, {credentials: 'same-origin', headers: {Accept: 'application/geo+json'}})
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (fc) {
        layer.clearLayers();
        var feats = (fc.features || []).filter(function (f) { return f.geometry && f.geometry.type !== 'LineString' && f.geometry.type !== 'MultiLineString'; });
        feats.sort(function (a, b) { return (b.properties.budget_min || 0) - (a.properties.budget_min || 0); });
        feats.forEach(function (f) {
          f.properties.label = f.properties.label || (G.fmt(f.properties.budget_min, 'num') + ' ' + G.t('common.minutes'));
        });
        layer.addData({type: 'FeatureCollection', features: feats});
        if (!G.map.hasLayer(layer)) { G.map.addLayer(layer); }
        if (feats.length) { G.map.fitBounds(layer.getBounds(), {padding: [30, 30]}); }
        if (onDone) { onDone(true, feats.length); }
      })
      .catch(function () { if (onDone) { onDone(false, G.t('coverage.sa_unavailable')); } });
  };
  G.clearServiceAreas = function () { if (G.layers.service_areas) { G.layers.service_areas.clearLayers(); } };

  // --- GCJ-02 display transform (AMap-style basemaps) ---------------------------------------------
  // Stored data stays WGS84; only a GCJ-02 raster basemap is shifted so it lines up with it.
  var A = 6378245.0, EE = 0.00669342162296594323, PI = Math.PI;
  function outOfChina(lon, lat) { return lon < 72.004 || lon > 137.8347 || lat < 0.8293 || lat > 55.8271; }
  function tLat(x, y) {
    var r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
    r += (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0;
    r += (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0;
    r += (160.0 * Math.sin(y / 12.0 * PI) + 320 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
    return r;
  }
  function tLon(x, y) {
    var r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
    r += (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0;
    r += (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0;
    r += (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
    return r;
  }
  function wgsToGcj(lon, lat) {
    if (outOfChina(lon, lat)) { return [lon, lat]; }
    var dLat = tLat(lon - 105.0, lat - 35.0), dLon = tLon(lon - 105.0, lat - 35.0);
    var radLat = lat / 180.0 * PI, magic = Math.sin(radLat);
    magic = 1 - EE * magic * magic;
    var sq = Math.sqrt(magic);
    dLat = (dLat * 180.0) / ((A * (1 - EE)) / (magic * sq) * PI);
    dLon = (dLon * 180.0) / (A / sq * Math.cos(radLat) * PI);
    return [lon + dLon, lat + dLat];
  }
  function gcjToWgs(lon, lat) {
    if (outOfChina(lon, lat)) { return [lon, lat]; }
    var w = [lon, lat];
    for (var i = 0; i < 30; i++) {
      var g = wgsToGcj(w[0], w[1]);
      var dx = g[0] - lon, dy = g[1] - lat;
      w = [w[0] - dx, w[1] - dy];
      if (Math.abs(dx) < 1e-12 && Math.abs(dy) < 1e-12) { break; }
    }
    return w;
  }
  G.gcj02 = {fromWgs84: wgsToGcj, toWgs84: gcjToWgs};

  if (window.L && L.TileLayer) {
    var toGcjLatLng = function (ll) { var g = wgsToGcj(ll.lng, ll.lat); return L.latLng(g[1], g[0]); };
    L.TileLayer.GCJ02 = L.TileLayer.extend({
      _setZoomTransform: function (level, center, zoom) {
        return L.TileLayer.prototype._setZoomTransform.call(this, level, toGcjLatLng(center), zoom);
      },
      _getTiledPixelBounds: function (center) {
        return L.TileLayer.prototype._getTiledPixelBounds.call(this, toGcjLatLng(center));
      }
    });
    L.tileLayer.gcj02 = function (url, options) { return new L.TileLayer.GCJ02(url, options); };
  }
})();
