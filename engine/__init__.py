"""TinyStudio engine: IR, ops, importers/exporters, zoo, execution. Never imports streamlit or store."""
__version__ = "0.1.0"
