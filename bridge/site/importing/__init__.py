"""Reading other blogs' feeds and exports into indiebridge content, with no network.

The pieces, in the order an import runs them:

* ``wxr`` reads a WordPress export (WXR), ``feeds`` any RSS 1.0/2.0 or Atom feed; both
  return the same ``model.ParsedFeed`` of ``model.FeedEntry`` values;
* ``wordpress_content`` turns WordPress post text (block comments, classic-editor
  paragraphs, shortcodes) into plain HTML;
* ``full_content`` tells a summary-only entry from a full one and finds the post in a
  fetched page (the fetching itself is a callable the caller passes in);
* ``html_to_markdown`` turns HTML into the Markdown the site renders, and ``summaries``
  cuts clean plain-text summaries;
* ``files`` writes front matter and files without ever overwriting, ``redirects`` maps
  old URLs to new ones.

``bridge.site.importer`` runs them: see its docstring for what an import keeps.
"""
