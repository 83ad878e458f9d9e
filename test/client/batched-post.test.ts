/**
 * client/component/batched-post.ts: messages queued in one task reach the other side in one post,
 * in their order; a message queued after that post goes in the next one.
 */
import { describe, expect, it } from 'vitest';
import { batchedPost } from '../../client/component/batched-post.js';

describe('batchedPost', () => {
  it('posts the messages of one task together, in order, and later ones in a post of their own', async () => {
    const posts: number[][] = [];
    let posted: () => void = () => undefined;
    const post = batchedPost<number>((messages) => {
      posts.push(messages);
      posted();
    });
    const next = (): Promise<void> => new Promise((resolve) => (posted = resolve));

    let arrived = next();
    post(1);
    post(2);
    await Promise.resolve(); // a microtask later is still this task
    post(3);
    expect(posts).toEqual([]); // nothing is posted synchronously
    await arrived;
    expect(posts).toEqual([[1, 2, 3]]);

    arrived = next();
    post(4);
    await arrived;
    expect(posts).toEqual([[1, 2, 3], [4]]);
  });
});
