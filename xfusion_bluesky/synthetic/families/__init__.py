"""Scene families, one module each: its parameters (``SPEC``) and its renderer.

:mod:`~xfusion_bluesky.synthetic.families.base` holds what the renderers share;
:func:`xfusion_bluesky.synthetic.scene.generate_scene` dispatches to them.
"""
