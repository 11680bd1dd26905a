"""keel.costs"""
