"""Workflows that the studio's pages and the `tinystudio` command share (layout-free, no Streamlit)."""
