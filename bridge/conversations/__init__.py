"""Replies, reactions and webmentions turned into comments, and their moderation."""
