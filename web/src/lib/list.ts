import type { Page } from "../types";

/** Items of an answer that is either a bare array or a page. */
export function itemsOf<T>(d: T[] | Page<T> | undefined): T[] {
  if (!d) return [];
  return Array.isArray(d) ? d : d.items;
}
