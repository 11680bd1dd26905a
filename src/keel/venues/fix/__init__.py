"""keel.venues.fix"""
