-- Several nodes: the node whose SFU carries an SFU call's media (its bus id), so
-- every node sends that call's `sfu` frames there. NULL: no node yet, or its node
-- stopped (a live node takes it over at the next offer).
ALTER TABLE calls ADD COLUMN sfu_node TEXT;
