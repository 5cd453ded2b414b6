/* The home page of a station chief and of the leadership (issue 14): beside today's live counts
 * (rendered by the server), the month-to-date SLA rates (their station and the county, or the
 * county) and the 满天星 ranking position (a chief: their station's rank, stars and change; the
 * leadership: the top and bottom three), from the reports API. MIT-licensed as part of the project.
 */
(function () {
  'use strict';

  var root = document.getElementById('home');
  var G = window.gisapp;
  var cfg = root && G.pageConfig('home-config');
  if (!cfg) { return; }
  var lang = cfg.lang === 'en' ? 'en' : 'zh';
  var API = cfg.api || '/api/v1/reports';
  var SPRITE = '/static/vendor/fontawesome/icons.svg';
  var esc = G.esc;
  var own = cfg.own_organisation;

  var t = G.tf;
  function icon(name, cls) { return '<svg class="ic ' + (cls || '') + '" aria-hidden="true"><use href="' + SPRITE + '#fa-' + name + '"></use></svg>'; }
  function pct(v) { return v === null || v === undefined ? '—' : (Number(v) * 100).toFixed(1) + '%'; }
  function name(r) { return lang === 'en' ? (r.name_en || r.name) : r.name; }
  function stars(v) {
    var out = '', s = Number(v) || 0;
    for (var i = 1; i <= 5; i++) {
      out += s >= i ? icon('star', 'star-on') : (s >= i - 0.5 ? icon('star-half-stroke', 'star-on') : icon('star', 'star-off'));
    }
    return '<span class="stars" data-stars="' + esc(String(s)) + '">' + out + '</span>';
  }
  function change(c) {
    if (c === null || c === undefined) { return '<span class="chg new">' + esc(t('rp.rank.new')) + '</span>'; }
    if (c > 0) { return '<span class="chg up">' + icon('arrow-up') + c + '</span>'; }
    if (c < 0) { return '<span class="chg down">' + icon('arrow-down') + (-c) + '</span>'; }
    return '<span class="chg same">' + icon('minus') + '</span>';
  }
  var q = 'month=' + encodeURIComponent(cfg.month) + (own ? '&organisation=' + encodeURIComponent(own) : '');
  document.querySelector('[data-testid=home-month]').textContent = cfg.month;

  function rates(d) {
    var el = root.querySelector('[data-testid=home-rates]');
    var rows = [];
    if (own) {
      var mine = (d.rows || []).filter(function (r) { return r.organisation_id === own; })[0];
      if (mine) { rows.push([name(mine), mine, 'mine']); }
    }
    if (d.county) { rows.push([t('rp.county'), d.county, 'county']); }
    var clocks = ['sign_off', 'first_feedback', 'close'];
    el.innerHTML = (d.empty ? '<div class="empty-note">' + esc(t('rp.empty')) + '</div>' : '') +
      '<table class="table-compact"><tr><th></th>' + clocks.map(function (c) {
        return '<th class="num">' + esc(t('rp.kpi.' + c + '_rate')) + '<div class="tg">' + esc(t('rp.target', {v: pct(cfg.targets[c + '_rate'])})) + '</div></th>';
      }).join('') + '</tr>' + rows.map(function (r) {
        return '<tr class="' + r[2] + '" data-testid="home-rate-' + r[2] + '"><td>' + esc(r[0]) + '</td>' + clocks.map(function (c) {
          var v = r[1][c + '_rate'], tg = cfg.targets[c + '_rate'];
          return '<td class="num ' + (v === null || v === undefined ? '' : (v >= tg ? 'good' : 'bad')) + '" data-rate="' + c + '">' + pct(v) +
            '<div class="cnt">' + esc(String(r[1][c + '_met'] || 0)) + '/' + esc(String(r[1][c + '_decided'] || 0)) + '</div></td>';
        }).join('') + '</tr>';
      }).join('') + '</table>';
  }
  function rank(d) {
    var el = root.querySelector('[data-testid=home-rank]');
    var rows = d.rows || [];
    if (!rows.length) { el.innerHTML = '<div class="empty-note">' + esc(t('rp.empty')) + '</div>'; return; }
    function line(r) {
      return '<tr class="' + (own && r.organisation_id === own ? 'mine' : '') + '" data-testid="home-rank-row"><td class="num">' + esc(String(r.rank)) + '</td><td>' +
        esc(name(r)) + '</td><td>' + stars(r.stars) + '</td><td class="num">' + esc(Number(r.score).toFixed(1)) + '</td><td>' + change(r.rank_change) + '</td></tr>';
    }
    if (own) {
      var mine = rows.filter(function (r) { return r.organisation_id === own; })[0];
      el.innerHTML = mine ? '<div class="home-rank-big" data-testid="home-rank-own"><div class="pos">' + esc(t('home.rank_of', {rank: mine.rank, n: rows.length})) +
        '</div>' + stars(mine.stars) + ' <b>' + esc(Number(mine.score).toFixed(1)) + '</b> ' + change(mine.rank_change) + '</div>'
        : '<div class="empty-note" data-testid="home-rank-own">' + esc(t('home.not_ranked')) + '</div>';
      return;
    }
    var sorted = rows.slice().sort(function (a, b) { return a.rank - b.rank; });
    var top = sorted.slice(0, 3), bottom = sorted.length > 3 ? sorted.slice(Math.max(3, sorted.length - 3)) : [];
    el.innerHTML = '<div class="lh">' + esc(t('home.top')) + '</div><table class="table-compact" data-testid="home-rank-top">' + top.map(line).join('') + '</table>' +
      (bottom.length ? '<div class="lh">' + esc(t('home.bottom')) + '</div><table class="table-compact" data-testid="home-rank-bottom">' + bottom.map(line).join('') + '</table>' : '');
  }
  function fail(sel, e) { root.querySelector(sel).innerHTML = '<div class="rp-msg">' + esc(e.message) + '</div>'; }
  Promise.all([
    G.api('GET', API + '/sla?' + q).then(rates, function (e) { fail('[data-testid=home-rates]', e); throw e; }),
    G.api('GET', API + '/ranking?month=' + encodeURIComponent(cfg.month)).then(rank, function (e) { fail('[data-testid=home-rank]', e); throw e; })
  ]).then(function () { root.setAttribute('data-state', 'ready'); }, function () { root.setAttribute('data-state', 'error'); });
})();
