using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Cora.Tests;

/// <summary>
/// <see cref="NarrowHeadAttention"/> computes what libtorch's causal scaled-dot-product attention computes (grouped-query heads
/// repeated), forward and backward, for the specialised 8-wide heads and the general path; it refuses what it cannot take.
/// </summary>
[TestClass]
public class NarrowHeadAttentionTests
{
    public static IEnumerable<object[]> Shapes => new[]
    {
        new object[] { 2, 13, 4, 2, 8 },    // grouped-query, T not a multiple of the vector width
        new object[] { 3, 1, 2, 2, 8 },     // one token
        new object[] { 2, 16, 4, 4, 8 },    // T a multiple of the vector width (no partial key block)
        new object[] { 2, 70, 8, 4, 8 },    // stories260K's heads
        new object[] { 2, 37, 6, 3, 12 },   // general path
        new object[] { 1, 64, 2, 1, 32 },   // the widest head taken
    };

    [TestMethod]
    [DynamicData(nameof(Shapes))]
    public void MatchesScaledDotProductAttentionForwardAndBackward(int b, int t, int h, int kv, int hd)
    {
        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator((ulong)(b * 1000 + t * 10 + hd));
        var q = torch.randn(new long[] { b, t, h, hd }, generator: g).mul(2).requires_grad_();
        var k = torch.randn(new long[] { b, t, kv, hd }, generator: g).requires_grad_();
        var v = torch.randn(new long[] { b, t, kv, hd }, generator: g).requires_grad_();
        var w = torch.randn(new long[] { b, t, h, hd }, generator: g);                   // a loss that weighs every output

        var mine = NarrowHeadAttention.Causal(q, k, v);
        mine.mul(w).sum().backward();
        var (dq, dk, dv) = (q.grad!.clone(), k.grad!.clone(), v.grad!.clone());
        q.grad!.zero_(); k.grad!.zero_(); v.grad!.zero_();

        int rep = h / kv;
        var reference = nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2).repeat_interleave(rep, 1),
            v.transpose(1, 2).repeat_interleave(rep, 1), is_casual: true).transpose(1, 2);                            // [B, T, H, hd]
        reference.mul(w).sum().backward();

        CollectionAssert.AreEqual(new long[] { b, t, h, hd }, mine.shape);
        AssertClose(reference, mine, "output");
        AssertClose(q.grad!, dq, "dq");
        AssertClose(k.grad!, dk, "dk");
        AssertClose(v.grad!, dv, "dv");
        Assert.IsTrue(v.grad!.abs().max().item<float>() > 0.01, "the gradients must not vanish");

        using (torch.no_grad())
        {
            var plain = NarrowHeadAttention.Causal(q, k, v);
            Assert.AreEqual(0f, plain.sub(mine.detach()).abs().max().item<float>(), "without autograd the same numbers");
        }
    }

    [TestMethod]
    public void ItsExponentialIsWithin4e7OfMathExpAndZeroForMaskedKeys()
    {
        var xs = Enumerable.Range(0, 8001).Select(i => -87f + i * (87f + 20f) / 8000).ToArray();   // the softmax range: [-87, 20]
        for (int i = 0; i + 8 <= xs.Length; i += 8)
        {
            var got = NarrowHeadAttention.Exp(Vector256.Create(xs, i));
            for (int l = 0; l < 8; l++)
            {
                double want = Math.Exp(xs[i + l]);
                Assert.IsTrue(Math.Abs(got.GetElement(l) - want) <= 4e-7 * want, $"exp({xs[i + l]}) = {got.GetElement(l)}, want {want}");
            }
        }
        var edge = NarrowHeadAttention.Exp(Vector256.Create(float.NegativeInfinity, -1000f, -88f, 0f, 1f, -0.5f, 88f, 10f));
        Assert.AreEqual(0f, edge.GetElement(0), "exp(-inf) = 0 (masked keys)");
        Assert.AreEqual(0f, edge.GetElement(1));
        Assert.AreEqual(1f, edge.GetElement(3));
        Assert.IsTrue(float.IsFinite(edge.GetElement(6)) && edge.GetElement(6) > 1e38f, "no overflow at the top of the range");
    }

    [TestMethod]
    public void TakesNonContiguousInputs()
    {
        var g = new torch.Generator(5);
        var q = torch.randn(new long[] { 2, 4, 9, 8 }, generator: g).transpose(1, 2);       // [2, 9, 4, 8], strided
        var k = torch.randn(new long[] { 2, 2, 9, 8 }, generator: g).transpose(1, 2);
        var v = torch.randn(new long[] { 2, 2, 9, 8 }, generator: g).transpose(1, 2);
        AssertClose(NarrowHeadAttention.Causal(q.contiguous(), k.contiguous(), v.contiguous()), NarrowHeadAttention.Causal(q, k, v), "strided");
    }

    [TestMethod]
    public void RefusesWhatItCannotTake()
    {
        Assert.IsFalse(NarrowHeadAttention.Supports(torch.zeros(1, 4, 2, 64)), "wide heads go to libtorch");
        Assert.IsFalse(NarrowHeadAttention.Supports(torch.zeros(1, 4, 2, 8, dtype: ScalarType.BFloat16)), "bf16 goes to libtorch");
        Assert.IsFalse(NarrowHeadAttention.Supports(torch.zeros(4, 2, 8)), "rank 4 only");
        Assert.IsTrue(NarrowHeadAttention.Supports(torch.zeros(1, 4, 2, 8)));
        var e = Assert.ThrowsExactly<ArgumentException>(() => NarrowHeadAttention.Causal(torch.zeros(1, 4, 3, 8), torch.zeros(1, 4, 2, 8), torch.zeros(1, 4, 2, 8)));
        StringAssert.Contains(e.Message, "KV dividing H");
        StringAssert.Contains(e.Message, "[1, 4, 3, 8]");
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        double scale = Math.Max(1, expected.abs().max().item<float>());
        double diff = expected.sub(actual).abs().max().item<float>();
        Assert.IsTrue(diff <= 1e-5 * scale, $"{what}: differs by {diff:E2} (largest entry {scale:E2})");
    }
}
