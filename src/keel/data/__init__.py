"""keel.data"""
