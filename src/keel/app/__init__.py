"""keel.app"""
