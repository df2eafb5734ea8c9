"""sf2f: a course-style re-implementation of Speech Fusion to Face (ACM MM 2022) and its voice2face baseline. Heavy code
lives here; the numbered notebooks in `notebooks/` teach with it. Start with `python -m sf2f --help`."""

__version__ = "0.1.0"
