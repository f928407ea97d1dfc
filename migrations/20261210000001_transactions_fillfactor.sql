-- Room in each new page of `transactions` for a new version of every row on it. The pipeline
-- moves rows on in batches, and rows inserted together share a page and are updated together:
-- one statement updates most of a page's rows, and within it no old version is dead yet, so
-- nothing on the page can be pruned. At fillfactor 80 a page had room for about a fifth of its
-- rows' new versions and 22 % of the updates were not HOT (each then adds an entry to every
-- index); at 50 almost all are (txn-bench: 99.7 %). The cost is space: each page holds about
-- 60 % of the rows it held. Pages already written keep their fill.
ALTER TABLE transactions SET (fillfactor = 50);
