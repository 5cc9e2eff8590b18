"""The ``_headers`` file for static hosts (Netlify, Cloudflare Pages): content types."""

HEADERS_FILE = """\
# Netlify / Cloudflare Pages style headers: Mastodon refuses an actor served as
# application/json, so every ActivityPub document is served as activity+json.
/ap/*
  Content-Type: application/activity+json
  Access-Control-Allow-Origin: *
/.well-known/webfinger
  Content-Type: application/jrd+json
  Access-Control-Allow-Origin: *
/.well-known/host-meta
  Content-Type: application/xrd+xml
/.well-known/nodeinfo
  Content-Type: application/json
/nodeinfo/*
  Content-Type: application/json; profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"
"""
