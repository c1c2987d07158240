namespace LLGBM.Checkpoints;

/// <summary>The rules a Hugging Face checkpoint directory's weight files must pass; see <see cref="CheckpointWeights.Open"/>.</summary>
public enum CheckpointRule
{
    /// <summary>The directory does not exist.</summary>
    NoDirectory,

    /// <summary>The directory holds neither <c>model.safetensors</c> nor <c>model.safetensors.index.json</c>.</summary>
    NoWeights,

    /// <summary>The index file is over the size cap (100,000,000 bytes).</summary>
    IndexTooLarge,

    /// <summary>The index file is not valid UTF-8 JSON.</summary>
    IndexNotJson,

    /// <summary>
    /// The index JSON has the wrong structure: not an object, no <c>weight_map</c> object, a shard name that is not a
    /// string, <c>metadata</c> that is not an object or a <c>total_size</c> that is not a non-negative integer.
    /// </summary>
    IndexSchema,

    /// <summary>A shard name in the weight map is empty, rooted, or resolves outside the directory.</summary>
    ShardPathEscapes,

    /// <summary>A shard file named in the weight map is not in the directory.</summary>
    ShardMissing,

    /// <summary>A tensor is held by two shard files, or listed twice in the weight map.</summary>
    TensorInTwoShards,

    /// <summary>The weight map assigns a tensor to a shard whose header does not hold it.</summary>
    TensorMissingFromShard,

    /// <summary>A shard holds a tensor that the weight map does not list.</summary>
    TensorNotInIndex,
}
