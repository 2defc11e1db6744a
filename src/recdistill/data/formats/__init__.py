"""Dataset formats, one module each (see ``registry``): ``movielens_100k``, ``movielens_1m``, ``recbole``,
``plain_csv``."""
