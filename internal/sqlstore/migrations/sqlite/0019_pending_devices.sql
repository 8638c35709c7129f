-- New devices waiting for approval, by age: the cleanup removes those whose approval request
-- expired long ago (DeleteAbandonedDevices), without reading every device.
CREATE INDEX devices_pending ON devices (created_at) WHERE state = 'pending';
