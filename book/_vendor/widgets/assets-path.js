// Loaded after require.js and before embed-amd.js. The vendored widget manager
// (@jupyter-widgets/html-manager) loads its fonts from the folder of its AMD module
// "@jupyter-widgets/html-manager/dist/...", which require.js would place under the page's own
// folder; map that module folder to this one (_static/widgets/), where the fonts are.
(function () {
  var here = new URL("./", document.currentScript.src).href;
  require.config({paths: {"@jupyter-widgets/html-manager/dist": here.replace(/\/$/, "")}});
  window.__jupyter_widgets_assets_path__ = here;
})();
