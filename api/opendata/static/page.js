/* civicpulse public page: the sensors on a map (Leaflet, vendored), DAQI bands, latest values. */
(function () {
  "use strict";

  var BANDS = {
    "Low": "band-low", "Moderate": "band-moderate", "High": "band-high",
    "Very High": "band-very-high"
  };
  var COLOURS = {
    "band-low": "#2e9e44", "band-moderate": "#f39c12", "band-high": "#d62c1a",
    "band-very-high": "#7d3c98", "band-none": "#7f8c8d"
  };

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (cls) { node.className = cls; }
    return node;
  }

  function bandClass(props) {
    var band = props.daqi && props.daqi.band;
    return BANDS[band] || "band-none";
  }

  function daqiText(props) {
    if (!props.daqi || props.daqi.index === null) { return props.kind === "air_quality" ? "no index" : ""; }
    return props.daqi.index + " " + props.daqi.band;
  }

  function readingsList(props) {
    var list = el("ul");
    Object.keys(props.latest).sort().forEach(function (metric) {
      var r = props.latest[metric];
      var value = Math.round(r.value * 100) / 100;
      list.appendChild(el("li", metric + ": " + value + " " + r.unit));
    });
    return list;
  }

  function popup(props) {
    var box = el("div", null, "sensor-popup");
    box.appendChild(el("strong", props.site + " (" + props.sensor_id + ")"));
    box.appendChild(el("div", props.council + " · " + props.kind + " · " + props.status));
    if (props.kind === "air_quality") { box.appendChild(el("div", "DAQI: " + daqiText(props))); }
    box.appendChild(readingsList(props));
    return box;
  }

  function tableRow(props) {
    var tr = el("tr");
    tr.setAttribute("data-sensor-id", props.sensor_id);
    tr.appendChild(el("td", props.sensor_id));
    tr.appendChild(el("td", props.council));
    tr.appendChild(el("td", props.site));
    tr.appendChild(el("td", props.kind));
    tr.appendChild(el("td", props.status, "status-" + props.status));
    var daqi = el("td", daqiText(props));
    daqi.setAttribute("data-band", props.daqi && props.daqi.band ? props.daqi.band : "");
    tr.appendChild(daqi);
    var latest = el("td");
    latest.appendChild(readingsList(props));
    tr.appendChild(latest);
    return tr;
  }

  function csvLink() {
    var to = new Date();
    to.setUTCMinutes(0, 0, 0);
    var from = new Date(to.getTime() - 24 * 3600 * 1000);
    var link = document.getElementById("link-csv");
    link.href = "api/v1/aggregates?resolution=1h&format=csv&from=" +
      encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString());
  }

  function makeMap() {
    var node = document.getElementById("map");
    var map = L.map(node, { attributionControl: false, zoomSnap: 0.25 });
    var tiles = node.getAttribute("data-tiles");
    if (tiles) { L.tileLayer(tiles, { maxZoom: 19 }).addTo(map); }
    map.setView([54.5, -3.0], 5);  /* Great Britain until the sensors load */
    return map;
  }

  function show(map, collection) {
    var body = document.querySelector("#sensors tbody");
    var markers = [];
    collection.features.forEach(function (f) {
      var props = f.properties;
      body.appendChild(tableRow(props));
      if (!f.geometry) { return; }
      var cls = bandClass(props);
      var ll = [f.geometry.coordinates[1], f.geometry.coordinates[0]];
      var marker = L.circleMarker(ll, {
        radius: 9, weight: 2, color: "#222", fillColor: COLOURS[cls], fillOpacity: 0.85,
        className: "sensor-marker " + cls
      });
      marker.bindPopup(function () { return popup(props); });
      marker.bindTooltip(props.site + " (" + props.sensor_id + ")");
      marker.addTo(map);
      var path = marker.getElement();
      if (path) { path.setAttribute("data-sensor-id", props.sensor_id); }
      markers.push(ll);
    });
    if (markers.length) { map.fitBounds(L.latLngBounds(markers).pad(0.2), { maxZoom: 14 }); }
    var n = collection.features.length;
    document.getElementById("summary").textContent =
      n + " sensor" + (n === 1 ? "" : "s") + ", updated " + collection.timeStamp;
    document.body.setAttribute("data-state", "ready");
  }

  function start() {
    csvLink();
    var map = makeMap();
    fetch("api/v1/sensors.geojson", { headers: { "Accept": "application/geo+json" } })
      .then(function (r) {
        if (!r.ok) { throw new Error("sensors.geojson: HTTP " + r.status); }
        return r.json();
      })
      .then(function (collection) { show(map, collection); })
      .catch(function (err) {
        document.getElementById("summary").textContent = "Could not load the sensors.";
        document.body.setAttribute("data-state", "error");
        console.error(err);
      });
  }

  start();
})();
