namespace LLGBM.Checkpoints;

/// <summary>
/// The validation rules a safetensors file must pass, in the order <see cref="SafetensorsHeader"/> applies them.
/// A <see cref="SafetensorsFormatException"/> names the first rule the file breaks.
/// </summary>
public enum SafetensorsRule
{
    /// <summary>The file is shorter than the 8 bytes of the header length.</summary>
    FileTooSmall,

    /// <summary>The header length N is over the 100,000,000 byte cap.</summary>
    HeaderTooLarge,

    /// <summary>The header length N plus its 8 bytes is more than the file holds.</summary>
    HeaderBeyondFile,

    /// <summary>The header bytes are not valid UTF-8.</summary>
    HeaderNotUtf8,

    /// <summary>The header is not a single JSON value.</summary>
    HeaderNotJson,

    /// <summary>
    /// The header JSON has the wrong structure: not an object, a tensor entry that is not an object, a missing or
    /// ill-typed <c>dtype</c>, <c>shape</c> or <c>data_offsets</c>, a negative or non-integer dimension or offset.
    /// </summary>
    HeaderSchema,

    /// <summary>A tensor's <c>dtype</c> is not one of the names of <see cref="SafetensorsDType"/>.</summary>
    UnknownDType,

    /// <summary><c>__metadata__</c> is not an object whose values are all strings.</summary>
    MetadataNotStrings,

    /// <summary>A name occurs twice in one JSON object of the header (two tensors with one name, most often).</summary>
    DuplicateName,

    /// <summary>A tensor's end offset is before its begin offset.</summary>
    OffsetsReversed,

    /// <summary>The first tensor, in offset order, does not begin at offset 0 of the data buffer.</summary>
    OffsetsNotFromZero,

    /// <summary>A tensor begins after the end of the one before it in offset order, leaving unclaimed bytes.</summary>
    OffsetsGap,

    /// <summary>A tensor begins before the end of the one before it in offset order.</summary>
    OffsetsOverlap,

    /// <summary>The element count times the element size of a tensor does not fit in a 64-bit integer.</summary>
    ByteSizeOverflow,

    /// <summary>The element count times the element size of a tensor differs from its byte range.</summary>
    ByteSizeMismatch,

    /// <summary>The file ends before the end of the data buffer the header describes.</summary>
    DataTruncated,

    /// <summary>The file has bytes after the end of the data buffer the header describes.</summary>
    TrailingBytes,
}
