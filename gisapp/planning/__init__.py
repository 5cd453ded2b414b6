"""Planning of jurisdictions and joint war zones (no Flask).

``drafts`` (plans and their areas), ``reshape`` (move, give, split, merge), ``validation``,
``publish`` (publish, roll back, due grid changes, ownership at a time), ``network`` (road
times for plans), ``compare`` (a draft against the published layout on the past year's
incidents) and ``proposals`` (Voronoi, balanced, patrol posts).
"""
