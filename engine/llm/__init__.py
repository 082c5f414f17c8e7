"""LLM backends behind one small interface (``engine.llm.base``); nothing outside this
package speaks to an LLM. ``engine.llm.factory.make_backend`` builds one from settings."""
