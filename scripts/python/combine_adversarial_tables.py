"""Adds up two halves of `examples/adversarial.rs`'s table.md (the first and
the second 5,000 MNIST test images, `--test-count 5000` and `--test-skip 5000
--test-count 5000`) into the table of the whole test set.

Usage: combine_adversarial_tables.py FIRST/table.md SECOND/table.md \
           data/mnist/t10k-labels-idx1-ubyte > table.md

The counts behind each percentage are recovered from it (at 5,000 images a
percentage with two decimals is exact to the image; the script checks that
each recovered count reproduces the printed value): accuracy from the correct
images, success rate from the images the attack turned wrong over the
correctly classified ones (the ε = 0 row), PGD toward 0 from the images of
other classes (counted in the labels file) it made the network call 0; the
mean L-infinity perturbation is the mean of the two halves' means.
"""
import sys
def rows(p):
    out=[]
    for line in open(p).read().splitlines()[2:]:
        c=[x.strip() for x in line.split('|')[1:-1]]
        out.append(c)
    return out
a,b=rows(sys.argv[1]),rows(sys.argv[2])
lab=open(sys.argv[3],'rb').read()[8:]
others=[sum(1 for v in lab[0:5000] if v!=0), sum(1 for v in lab[5000:10000] if v!=0)]
pct=lambda s: float(s.rstrip(' %'))/100
N=5000
clean={}
for t,half in ((a,0),(b,1)):
    for c in t:
        if c[2]=='0.00': clean[(c[0],half)]=round(pct(c[3])*N)
print('| model | attack | ε | accuracy | success rate | mean L∞ | PGD toward 0 |')
print('|---|---|---|---|---|---|---|')
for ca,cb in zip(a,b):
    assert ca[:3]==cb[:3]
    m=ca[0]
    corr=[round(pct(ca[3])*N), round(pct(cb[3])*N)]
    ok=[clean[(m,0)],clean[(m,1)]]
    fl=[round(pct(ca[4])*ok[0]), round(pct(cb[4])*ok[1])]
    # consistency: recovered counts reproduce the printed percentages
    for i,(c,o,f) in enumerate(((ca,ok[0],fl[0]),(cb,ok[1],fl[1]))):
        assert abs(100*f/o - float(c[4].rstrip(' %')))<0.006, (c, f, o)
    linf=(float(ca[5])+float(cb[5]))/2
    if ca[6]!='–':
        hit=[round(pct(ca[6])*others[0]), round(pct(cb[6])*others[1])]
        assert abs(100*hit[0]/others[0]-float(ca[6].rstrip(' %')))<0.006
        tg='%.2f %%'%(100*sum(hit)/sum(others))
    else: tg='–'
    print('| %s | %s | %s | %.2f %% | %.2f %% | %.4f | %s |'%(m,ca[1],ca[2],100*sum(corr)/(2*N),100*sum(fl)/sum(ok),linf,tg))
