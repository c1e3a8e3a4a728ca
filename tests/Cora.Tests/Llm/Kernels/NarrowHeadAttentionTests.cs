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
    public void MatchesScaledDotProductAttentionForwardAndBackward(int b, int t, int h, int kv, int hd) => Matches(b, t, h, kv, hd, 256);

    /// <summary>With 512-bit vectors (16 keys at a time; 8-wide heads on CPUs with AVX-512, elsewhere the 256-bit path runs): T on
    /// both sides of a multiple of 16, one token, grouped-query heads.</summary>
    [TestMethod]
    [DataRow(2, 13, 4, 2, 8)]
    [DataRow(3, 1, 2, 2, 8)]
    [DataRow(2, 32, 4, 4, 8)]
    [DataRow(2, 70, 8, 4, 8)]
    [DataRow(1, 37, 6, 3, 12)]
    public void With512BitVectorsMatchesScaledDotProductAttention(int b, int t, int h, int kv, int hd) => Matches(b, t, h, kv, hd, 512);

    private static void Matches(int b, int t, int h, int kv, int hd, int vectorBits)
    {
        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator((ulong)(b * 1000 + t * 10 + hd));
        var q = torch.randn(new long[] { b, t, h, hd }, generator: g).mul(2).requires_grad_();
        var k = torch.randn(new long[] { b, t, kv, hd }, generator: g).requires_grad_();
        var v = torch.randn(new long[] { b, t, kv, hd }, generator: g).requires_grad_();
        var w = torch.randn(new long[] { b, t, h, hd }, generator: g);                   // a loss that weighs every output

        var mine = NarrowHeadAttention.Causal(q, k, v, vectorBits);
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
            var plain = NarrowHeadAttention.Causal(q, k, v, vectorBits);
            Assert.AreEqual(0f, plain.sub(mine.detach()).abs().max().item<float>(), "without autograd the same numbers");
        }
    }

    [TestMethod]
    [DataRow(8, 256)]
    [DataRow(12, 256)]
    [DataRow(8, 512)]
    public void PeakedRowsGiveLibtorchsGradientsAndNoSubnormalFloat(int hd, int vectorBits)
    {
        // Two tokens: query 1 scores key 0 at 86 below key 1, so P_10 = e^-86 (a normal float) and, with dO_0 = 0,
        // dv_0 = P_10 · dO_1 = 4e-39 in exact arithmetic: a subnormal float, which x86 computes through slow microcode assists.
        // Weights below 2^-64 count as 0 instead (their effect is far below float32 rounding), so dv_0 is exactly 0.
        using var scope = torch.NewDisposeScope();
        var q = torch.zeros(1, 2, 1, hd); var k = torch.zeros(1, 2, 1, hd); var v = torch.ones(1, 2, 1, hd);
        float sqrt = MathF.Sqrt(hd);
        q[0, 1, 0, 0] = torch.tensor(sqrt); k[0, 1, 0, 0] = torch.tensor(86f);         // s_11 = 86, s_10 = 0
        q.requires_grad_(); k.requires_grad_(); v.requires_grad_();
        var dO = torch.zeros(1, 2, 1, hd); dO[0, 1] = torch.full(hd, 0.1f);
        NarrowHeadAttention.Causal(q, k, v, vectorBits).backward(new[] { dO });
        Assert.AreEqual(0f, v.grad![0, 0, 0, 0].item<float>(), "dv_0 = e^-86 · 0.1 is below 2^-64 of the row: exactly 0, not a subnormal");
        Assert.AreEqual(0.1f, v.grad![0, 1, 0, 0].item<float>(), 1e-7f);

        // Peaked rows at a realistic size: the same gradients as libtorch, and not one subnormal entry.
        var g = new torch.Generator(11);
        var q2 = torch.randn(new long[] { 2, 40, 4, hd }, generator: g).mul(25).requires_grad_();
        var k2 = torch.randn(new long[] { 2, 40, 2, hd }, generator: g).requires_grad_();
        var v2 = torch.randn(new long[] { 2, 40, 2, hd }, generator: g).requires_grad_();
        var w = torch.randn(new long[] { 2, 40, 4, hd }, generator: g);
        NarrowHeadAttention.Causal(q2, k2, v2, vectorBits).mul(w).sum().backward();
        var mine = new[] { q2.grad!.clone(), k2.grad!.clone(), v2.grad!.clone() };
        foreach (var x in new[] { q2, k2, v2 }) x.grad!.zero_();
        nn.functional.scaled_dot_product_attention(q2.transpose(1, 2), k2.transpose(1, 2).repeat_interleave(2, 1),
            v2.transpose(1, 2).repeat_interleave(2, 1), is_casual: true).transpose(1, 2).mul(w).sum().backward();
        var names = new[] { "dq", "dk", "dv" };
        var reference = new[] { q2.grad!, k2.grad!, v2.grad! };
        for (int i = 0; i < 3; i++)
        {
            AssertClose(reference[i], mine[i], names[i]);
            var a = mine[i].abs();
            long subnormal = a.gt(0).logical_and(a.lt(1.17549435e-38f)).sum().item<long>();
            Assert.AreEqual(0L, subnormal, $"{names[i]}: subnormal entries");
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
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => NarrowHeadAttention.Causal(torch.zeros(1, 4, 2, 8), torch.zeros(1, 4, 2, 8), torch.zeros(1, 4, 2, 8), 128));
        Assert.IsFalse(NarrowHeadAttention.Supports512(12), "512-bit vectors for 8-wide heads only");
    }

    private static void AssertClose(Tensor expected, Tensor actual, string what)
    {
        double scale = Math.Max(1, expected.abs().max().item<float>());
        double diff = expected.sub(actual).abs().max().item<float>();
        Assert.IsTrue(diff <= 1e-5 * scale, $"{what}: differs by {diff:E2} (largest entry {scale:E2})");
    }
}
