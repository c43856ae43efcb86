// nixrepo static package search. The index format is described in
// site/search.go: a manifest, prefix shards (full rows) and per-letter name
// lists (for substring and fuzzy matches), all loaded lazily.
// #results gets data-search-ms (query start to first results, in ms) and
// data-search-state (loading, partial, done, error) for tests and benchmarks.
(function () {
  'use strict';
  var out = document.getElementById('results');
  var form = document.getElementById('search-form');
  var input = document.getElementById('search');
  if (!out || !form || !input || !window.fetch) return;

  var LIMIT = 50;
  var manifestURL = out.getAttribute('data-manifest');
  var base = manifestURL.slice(0, manifestURL.lastIndexOf('/') + 1);
  var manifest = null, split = null, manifestP = null;
  var shardP = {}, namesP = {}, info = {};
  var seq = 0, timer = 0;

  function get(url) {
    return fetch(url).then(function (r) {
      if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
      return r.json();
    });
  }
  function useManifest(m) {
    manifest = m;
    split = new Set(m.split);
    return m;
  }
  try {
    var inline = out.getAttribute('data-index');
    if (inline) manifestP = Promise.resolve(useManifest(JSON.parse(inline)));
  } catch (e) { /* fetch it instead */ }
  function loadManifest() {
    if (!manifestP) {
      manifestP = get(manifestURL).then(useManifest);
      manifestP.catch(function () { manifestP = null; });
    }
    return manifestP;
  }
  // shard rows: [name, latest, versions, [repo index], description, file?]
  function shard(k) {
    if (!shardP[k]) {
      shardP[k] = get(base + 's/' + k + '.json?h=' + manifest.shards[k][1]).then(function (rows) {
        return rows.map(function (r) {
          var e = { name: r[0], lower: r[0].toLowerCase(), latest: r[1], n: r[2],
            repos: r[3].map(function (i) { return manifest.repos[i]; }), desc: r[4], file: r[5] || r[0] };
          info[e.name] = e;
          return e;
        });
      });
    }
    return shardP[k];
  }
  // name-list rows: [name, latest, versions, file?]
  function names(c) {
    if (!namesP[c]) {
      namesP[c] = get(base + 'n/' + c + '.json?h=' + manifest.names[c][1]).then(function (rows) {
        return rows.map(function (r) {
          return { name: r[0], lower: r[0].toLowerCase(), latest: r[1], n: r[2], file: r[3] || r[0] };
        });
      });
    }
    return namesP[c];
  }

  // keyOf is searchKey in site/search.go.
  function keyOf(s) {
    var k = '';
    for (var ch of s) {
      var c = ch.codePointAt(0);
      if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57)) k += ch;
      else if (c >= 65 && c <= 90) k += String.fromCharCode(c + 32);
      else k += '_';
    }
    return k;
  }
  // The shards that can hold names whose key starts with K, exact shard first.
  function shardsFor(K) {
    for (var d = 1; d <= K.length; d++) {
      var q = K.slice(0, d);
      if (split.has(q)) continue;
      return manifest.shards[q] ? [q] : [];
    }
    return Object.keys(manifest.shards).filter(function (k) { return k.startsWith(K); }).sort();
  }
  // The shard holding the name whose key is K.
  function shardOf(K) {
    for (var d = 1; d <= K.length; d++) {
      var q = K.slice(0, d);
      if (!split.has(q)) return q;
    }
    return K;
  }

  // Optimal string alignment distance, or max+1 once it must exceed max.
  function distance(a, b, max) {
    if (Math.abs(a.length - b.length) > max) return max + 1;
    var prev2 = null, prev = [], cur;
    for (var j = 0; j <= b.length; j++) prev[j] = j;
    for (var i = 1; i <= a.length; i++) {
      cur = [i];
      var best = i;
      for (j = 1; j <= b.length; j++) {
        var cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
        var v = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
        if (prev2 && i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, prev2[j - 2] + 1);
        cur[j] = v;
        if (v < best) best = v;
      }
      if (best > max) return max + 1;
      prev2 = prev;
      prev = cur;
    }
    return prev[b.length];
  }
  // Span of the shortest-greedy subsequence match of q in s, or -1.
  function subseq(q, s) {
    var i = 0, start = -1;
    for (var j = 0; j < s.length && i < q.length; j++) {
      if (s[j] === q[i]) {
        if (i === 0) start = j;
        i++;
        if (i === q.length) return j - start + 1;
      }
    }
    return -1;
  }
  function isWordChar(c) { return /[a-z0-9]/.test(c); }

  function byLen(a, b) { return a.name.length - b.name.length || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0); }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function render(st) {
    var frag = document.createDocumentFragment();
    var list = st.exact.concat(st.prefix, st.sub, st.fuzzy);
    var total = list.length;
    var status = el('p', 'status');
    if (st.state === 'done' && total === 0) {
      status.textContent = 'No package matches “' + st.q + '”. ';
      var a = el('a', null, 'Browse the package list');
      a.href = 'packages/index.html';
      status.appendChild(a);
      status.appendChild(document.createTextNode('.'));
    } else {
      status.textContent = (total === 1 ? '1 match' : total + ' matches') + ' for “' + st.q + '”' +
        (total > LIMIT ? ', showing the first ' + LIMIT : '') + (st.state === 'done' ? '.' : '; searching…');
    }
    frag.appendChild(status);
    if (total) {
      var ol = el('ol');
      list.slice(0, LIMIT).forEach(function (e) {
        var li = el('li');
        var a = el('a', null, e.name);
        a.href = 'packages/' + e.file + '.html';
        li.appendChild(a);
        li.appendChild(document.createTextNode(' '));
        li.appendChild(el('span', 'ver', e.latest));
        if (e.kind === 'exact') {
          li.appendChild(document.createTextNode(' '));
          li.appendChild(el('span', 'badge latest', 'exact match'));
        }
        var full = info[e.name] || e;
        var meta = e.n + (e.n === 1 ? ' version' : ' versions');
        if (full.repos && full.repos.length) meta += ' · ' + full.repos.join(', ');
        li.appendChild(document.createTextNode(' '));
        li.appendChild(el('span', 'muted', meta));
        if (full.desc) li.appendChild(el('span', 'desc', full.desc));
        ol.appendChild(li);
      });
      frag.appendChild(ol);
    }
    out.textContent = '';
    out.appendChild(frag);
    out.setAttribute('data-search-state', st.state);
    out.setAttribute('data-search-total', String(total));
    if (!st.timed && (total > 0 || st.state === 'done')) {
      st.timed = true;
      out.setAttribute('data-search-ms', (performance.now() - st.t0).toFixed(1));
      out.setAttribute('data-search-page-ms', performance.now().toFixed(1));
    }
  }

  async function run(raw, t0) {
    var my = ++seq;
    var q = raw.trim();
    out.removeAttribute('data-search-ms');
    out.removeAttribute('data-search-page-ms');
    out.setAttribute('data-search-query', q);
    if (!q) {
      out.textContent = '';
      out.removeAttribute('data-search-state');
      return;
    }
    var ql = q.toLowerCase();
    var st = { q: q, t0: t0, exact: [], prefix: [], sub: [], fuzzy: [], state: 'loading', timed: false };
    out.setAttribute('data-search-state', 'loading');
    try {
      if (!manifest) {
        await loadManifest();
        if (my !== seq) return;
      }
      // 1. Exact and prefix matches from the query's prefix shards.
      var keys = shardsFor(keyOf(q));
      var seen = new Set();
      for (var i = 0; i < keys.length; i++) {
        var rows = await shard(keys[i]);
        if (my !== seq) return;
        // Fetch ahead only once the first shard is in: it alone holds
        // the first results of most queries.
        for (var j = i + 1; j < i + 4 && j < keys.length; j++) shard(keys[j]).catch(function () {});
        rows.forEach(function (e) {
          if (e.lower === ql) { st.exact.push(Object.assign({ kind: 'exact' }, e)); seen.add(e.name); }
          else if (e.lower.startsWith(ql)) { st.prefix.push(Object.assign({ kind: 'prefix' }, e)); seen.add(e.name); }
        });
        if (!st.timed && (st.exact.length || st.prefix.length)) {
          st.prefix.sort(byLen);
          st.state = 'partial';
          render(st);
        }
      }
      st.prefix.sort(byLen);
      if (st.exact.length || st.prefix.length) {
        st.state = 'partial';
        render(st);
      }
      // 2. Substring and fuzzy matches over every name.
      var lists = await Promise.all(Object.keys(manifest.names).map(names));
      if (my !== seq) return;
      var maxDist = ql.length >= 8 ? 2 : 1;
      lists.forEach(function (rows) {
        rows.forEach(function (e) {
          if (seen.has(e.name)) return;
          var at = e.lower.indexOf(ql);
          if (at > 0) {
            st.sub.push(Object.assign({ kind: 'sub', score: isWordChar(e.lower[at - 1]) ? 1 : 0 }, e));
            return;
          }
          if (ql.length < 3) return;
          var score = -1;
          if (ql.length >= 4) {
            var d = distance(ql, e.lower, maxDist);
            if (d <= maxDist) score = d;
          }
          if (score < 0) {
            var span = subseq(ql, e.lower);
            if (span > 0 && span <= 2 * ql.length) score = maxDist + 1 + (span - ql.length);
          }
          if (score >= 0) st.fuzzy.push(Object.assign({ kind: 'fuzzy', score: score }, e));
        });
      });
      st.sub.sort(function (a, b) { return a.score - b.score || byLen(a, b); });
      st.fuzzy.sort(function (a, b) { return a.score - b.score || byLen(a, b); });
      render(st);
      // 3. Descriptions and repositories of the shown rows not loaded yet.
      var need = new Set();
      st.exact.concat(st.prefix, st.sub, st.fuzzy).slice(0, LIMIT).forEach(function (e) {
        if (!info[e.name]) {
          var k = shardOf(keyOf(e.name));
          if (manifest.shards[k]) need.add(k);
        }
      });
      if (need.size) {
        await Promise.all(Array.from(need).slice(0, 16).map(shard));
        if (my !== seq) return;
      }
      st.state = 'done';
      render(st);
    } catch (err) {
      if (my !== seq) return;
      out.textContent = '';
      out.appendChild(el('p', 'status', 'The search index could not be loaded (' + err.message + ').'));
      out.setAttribute('data-search-state', 'error');
    }
  }

  function setURL(q) {
    var u = location.pathname + (q ? '?q=' + encodeURIComponent(q) : '') + location.hash;
    try { history.replaceState(null, '', u); } catch (e) { /* file:// */ }
  }

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    clearTimeout(timer);
    setURL(input.value.trim());
    run(input.value, performance.now());
  });
  input.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      setURL(input.value.trim());
      run(input.value, performance.now());
    }, 120);
  });

  var q0 = new URLSearchParams(location.search).get('q');
  if (q0) {
    input.value = q0;
    run(q0, performance.now());
  } else {
    // Warm the manifest while the user types.
    loadManifest().catch(function () {});
  }
})();
