namespace LLGBM.Text;

/// <summary>The texts of the special tokens LLGBM relies on (Qwen2's names, also used by the byte-level tokenizer).</summary>
public static class SpecialTokenTexts
{
    /// <summary>Ends a document or a generated answer.</summary>
    public const string EndOfText = "<|endoftext|>";

    /// <summary>Opens a ChatML message.</summary>
    public const string ImStart = "<|im_start|>";

    /// <summary>Closes a ChatML message.</summary>
    public const string ImEnd = "<|im_end|>";

    /// <summary>Padding (byte-level tokenizer only; Qwen2 pads with <see cref="EndOfText"/>).</summary>
    public const string Pad = "<|pad|>";
}
