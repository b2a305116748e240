// Loaded between require.js and embed-amd.js (nb_ipywidgets_js in _config.yml).
(function () {
  // The widget bundles are named AMD modules; their CSS asks for icon fonts next to the
  // module's URL, which RequireJS would otherwise place next to the page. Map the modules
  // to this folder, where tools/book.py puts the fonts, so the site needs no network.
  var here = document.currentScript.src.replace(/[^/]*$/, "");
  window.require.config({ paths: { "@jupyter-widgets": here + "@jupyter-widgets" } });

  // @jupyter-widgets/base typesets widget labels with the MathJax 2 API (MathJax.Hub.Queue),
  // but the site serves MathJax 3, which has no Hub and replaces the window.MathJax config
  // object when it starts. Provide a Hub that forwards to MathJax 3's typesetPromise, on the
  // config object (calls before MathJax has loaded are kept) and again once it is ready.
  var config = window.MathJax;
  if (!config || typeof config !== "object" || config.Hub) return;
  var waiting = [];
  var started = false;
  function typeset(element) {
    window.MathJax.typesetPromise(element ? [element] : undefined).catch(function (err) {
      console.warn("MathJax could not typeset a widget label", err);
    });
  }
  var hub = {
    Queue: function (job) {
      var element = job && job[2];
      if (started) typeset(element);
      else waiting.push(element);
    },
  };
  config.Hub = hub;
  config.startup = config.startup || {};
  var ready = config.startup.ready;
  config.startup.ready = function () {
    if (ready) ready();
    else window.MathJax.startup.defaultReady();
    window.MathJax.Hub = hub;
    window.MathJax.startup.promise.then(function () {
      started = true;
      waiting.splice(0).forEach(typeset);
    });
  };
})();
